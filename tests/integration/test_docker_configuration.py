"""The production configuration (``orthanc-config/docker/orthanc.json``, mounted by ``docker-compose.yml``) on a real
Orthanc 1.13 with orthanc-python 7.1 on Python 3.14 and the PostgreSQL index plugin, the generation of the image
compose runs (orthancteam/orthanc 26.8.1): Debian forky's, in the forky root of ``tools/compat/`` (no Docker engine
runs here), two of them, as ``docker-compose.yml`` runs ``orthanc-1`` and ``orthanc-2``: one database, one storage
folder.

The test changes in that file only what names the container's world: ports, host names, paths, and what the image
itself adds (its plugin list; the users that compose passes as ``ORTHANC__REGISTERED_USERS``; the node's name, its
host name in the container). The rest, PostgreSQL
section, ``"Python"`` section, user metadata, ``"Anonymizer"`` section, is used as written; the PostgreSQL password
reaches Orthanc as in the container, through ``${POSTGRES_PASSWORD}``, against a throwaway cluster of the host's
PostgreSQL server that checks passwords. As in the image, the package is built and installed (not editable) from
exactly the files the Dockerfile copies; ``plugin/`` sits where compose mounts it, with no ``.venv`` beside it, and
its package comes first; the worker processes run on the system's ``python3``; ``PYTHONPATH`` stands in for the
image's system site-packages (the package, then the forky venv for its pinned dependencies, which ``make
compat-venv-forky`` installed on Python 3.14 from the same pins the Dockerfile installs).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from compat_roots import ROOTS
from orthanc_server import free_port
from postgresql_cluster import INDEX_PLUGIN, PostgreSQL, needs_postgresql, postgresql_cluster
from pydicom.data import get_testdata_file

CHECKOUT = Path(__file__).resolve().parents[2]
DOCKER_CONFIGURATION = CHECKOUT / "orthanc-config" / "docker" / "orthanc.json"
DOCKERFILE = CHECKOUT / "orthanc-config" / "docker" / "Dockerfile"
FORKY = ROOTS["forky"]
PLUGINS = ["/usr/share/orthanc/plugins/libOrthancPython.so", INDEX_PLUGIN]
USER = ("admin", "integration-test-password")
SITE_PROFILE = "site-own-profile"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or not FORKY.built(),
        reason=f"the production configuration runs on forky's Orthanc 1.13: no root and venv at {FORKY.root} and "
        f"{FORKY.venv} (make compat-venv-forky), or not root",
    ),
    # Once per make test-compat: in forky's pass (it does not depend on the Orthanc the other tests start).
    pytest.mark.skipif(
        os.environ.get("COMPAT_SUITE", "forky") != "forky", reason="run in make test-compat-forky's pass"
    ),
    needs_postgresql,
]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def postgresql() -> Iterator[PostgreSQL]:
    """A throwaway cluster with the database and user that docker-compose.yml's postgres service creates
    (``orthanc``/``orthanc``), a random password, and password checks on TCP."""
    configuration = json.loads(DOCKER_CONFIGURATION.read_text(encoding="utf-8"))["PostgreSQL"]
    password = secrets.token_hex(16)
    with postgresql_cluster(configuration["Username"], configuration["Database"], password) as server:
        yield server


@pytest.fixture(scope="module")
def image_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as the Dockerfile installs it: the files it copies, then ``pip install`` of that folder (here
    with ``--target`` and without the dependencies, which come from the forky venv)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    installs = re.findall(r"pip install .*--break-system-packages (\S+)", text)
    assert len(installs) == 1, "the Dockerfile should pip install one folder"
    source_in_image = installs[0].rstrip("/") + "/"
    folder = tmp_path_factory.mktemp("image")
    source = folder / "source"
    for line in re.findall(r"^COPY\s+(.+)$", text, re.MULTILINE):
        *sources, destination = line.split()
        if not destination.startswith(source_in_image):
            continue
        target = source / destination[len(source_in_image) :]
        for item in sources:
            origin = CHECKOUT / item
            into = target / origin.name if destination.endswith("/") else target
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)
    site = folder / "site-packages"
    pip = [str(CHECKOUT / ".venv" / "bin" / "pip"), "install", "-q", "--no-deps", "--target", str(site), str(source)]
    result = subprocess.run(pip, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"pip install of what the Dockerfile copies failed:\n{result.stderr[-4000:]}"
    return site


def rewritten_configuration(folder: Path, database: PostgreSQL, node: str) -> tuple[dict[str, Any], set[str]]:
    """The docker configuration with the container's ports, host names and paths replaced by this machine's (the
    storage folder is the test's, shared by its nodes; ``node`` stands for the container's host name); the
    top-level settings it changed or added."""
    original = json.loads(DOCKER_CONFIGURATION.read_text(encoding="utf-8"))
    config = json.loads(json.dumps(original))
    # plugin/ where compose mounts it (over the Dockerfile's copy of entry.py), under the test's folder; a copy, not a
    # link, so that entry.py finds no .venv beside it, as in the container.
    entry = folder / config["PythonScript"].lstrip("/")
    shutil.copytree(CHECKOUT / "plugin", entry.parent, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # profiles/ beside it, where compose mounts the checkout's (the site's folder the plugin reads by default), with a
    # profile of the site's own.
    site_profiles = entry.parent.parent / "profiles"
    shutil.copytree(CHECKOUT / "profiles", site_profiles)
    (site_profiles / f"{SITE_PROFILE}.csv").write_text("0008,1090;K\n", encoding="utf-8")
    storage = folder.parent / "storage"  # the orthanc-storage volume, mounted in every node
    config.update(
        HttpPort=free_port(),
        DicomPort=free_port(),
        StorageDirectory=str(storage),
        IndexDirectory=str(storage),
        PythonScript=str(entry),
        Plugins=PLUGINS,  # the image builds its own list from the "PythonScript" and "PostgreSQL" settings
        RegisteredUsers=dict([USER]),  # compose passes them as ORTHANC__REGISTERED_USERS
    )
    config["PostgreSQL"].update(Host="127.0.0.1", Port=database.port)
    config["Anonymizer"]["NodeName"] = node  # in the container, its host name (compose's "hostname")
    changed = {key for key in config if original.get(key) != config[key]}
    return config, changed


class DockerConfiguredOrthanc:
    """Forky's Orthanc with the rewritten docker configuration, ``entry.py`` outside any checkout."""

    def __init__(self, folder: Path, database: PostgreSQL, packages: Path, environ: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.config, self.changed = rewritten_configuration(folder, database, folder.name)
        self.url = f"http://127.0.0.1:{self.config['HttpPort']}"
        self.log = folder / "orthanc.log"
        path = folder / "orthanc.json"
        path.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        command = [
            str(FORKY.run),
            "/usr/bin/env",
            f"PYTHONPATH={packages}:{FORKY.site_packages}",
            "/usr/sbin/Orthanc",
            str(path),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "POSTGRES_PASSWORD": database.password, "TCP_NODELAY": "1", **environ},
            )

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"Orthanc exited:\n{self.log_text()[-6000:]}"
            try:
                if requests.get(self.url + "/system", auth=USER, timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer while it starts
                pass
            time.sleep(0.1)
        raise AssertionError(f"Orthanc did not answer within {timeout} s:\n{self.log_text()[-6000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def get(self, path: str) -> Any:
        response = requests.get(self.url + path, auth=USER, timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()


@pytest.fixture
def start(tmp_path: Path, postgresql: PostgreSQL, image_packages: Path) -> Iterator[Any]:
    servers: list[DockerConfiguredOrthanc] = []

    def starter(name: str, environ: dict[str, str]) -> DockerConfiguredOrthanc:
        server = DockerConfiguredOrthanc(tmp_path / name, postgresql, image_packages, environ)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.stop()


def test_the_production_configuration_runs_two_nodes_on_orthanc_1_13_with_the_postgresql_index(start: Any) -> None:
    secret = secrets.token_hex(16)
    server: DockerConfiguredOrthanc = start("orthanc-1", {"ANONYMIZER_SECRET": secret})
    assert server.changed == {
        "HttpPort",
        "DicomPort",
        "StorageDirectory",
        "IndexDirectory",
        "PythonScript",
        "Plugins",
        "RegisteredUsers",
        "PostgreSQL",
        "Anonymizer",
    }
    server.wait_ready()
    other: DockerConfiguredOrthanc = start("orthanc-2", {"ANONYMIZER_SECRET": secret})
    other.wait_ready()
    system = server.get("/system")
    assert system["Version"].startswith(FORKY.orthanc)
    assert "PostgreSQL" in str(system["DatabaseBackendPlugin"])  # logged in with ${POSTGRES_PASSWORD}
    assert server.get("/plugins/python")["Version"] == FORKY.orthanc_python
    # entry.py found no .venv beside it and used the interpreter's own packages.
    assert "using the system's Python packages" in server.log_text()
    assert requests.get(server.url + "/anonymizer/profiles", timeout=10).status_code == 401
    # No ProfilesDirectory: the shipped profiles and the site's own in the mounted profiles/ folder.
    offered = {profile["Name"] for profile in server.get("/anonymizer/profiles")}
    assert {"basic", "research-longitudinal", SITE_PROFILE} <= offered

    upload = requests.post(
        server.url + "/instances",
        data=Path(str(get_testdata_file("CT_small.dcm"))).read_bytes(),
        headers={"Content-Type": "application/dicom"},
        auth=USER,
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    study = upload.json()["ParentStudy"]
    response = requests.post(f"{server.url}/anonymizer/studies/{study}", json={}, auth=USER, timeout=120)
    assert response.status_code == 200, f"{response.text}\n{server.log_text()[-6000:]}"
    answer = response.json()
    assert answer["Instances"] == 1 and answer["Failed"] == []
    copy = answer["Resource"]
    # The other node sees the copy, its links both ways, and the one audit trail of the cluster.
    for node in (server, other):
        assert node.get(f"/anonymizer/studies/{study}/links")["Copies"] == [copy]
        assert node.get(f"/anonymizer/studies/{copy}/links")["Source"] == study
        metadata = requests.get(f"{node.url}/studies/{copy}/metadata/AnonymizedFromResource", auth=USER, timeout=10)
        assert metadata.text == study
        assert node.get("/anonymizer/audit/verify") == {"Valid": True, "Records": 1, "BrokenAt": None}
    assert other.get("/anonymizer/audit")[0]["Node"] == "orthanc-1"
    # No .venv beside the installed package: the workers run on the system's Python, as in the image.
    assert {os.readlink(f"/proc/{pid}/exe") for pid in children(server.process.pid)} == {
        str(FORKY.root / "usr" / "bin" / f"python{FORKY.python}")
    }
    state = Path(server.config["StorageDirectory"]) / "anonymizer"
    assert (state / "jobs" / "orthanc-1").is_dir() and not (state / "audit.jsonl").exists()
    assert server.stop() == 0, server.log_text()[-6000:]
    assert other.stop() == 0, other.log_text()[-6000:]


def test_the_production_configuration_refuses_to_start_without_the_secret(start: Any) -> None:
    server: DockerConfiguredOrthanc = start("no-secret", {"ANONYMIZER_SECRET": ""})
    try:
        status = server.process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Orthanc started without a secret:\n{server.log_text()[-6000:]}")
    assert status != 0
    assert "ANONYMIZER_SECRET" in server.log_text()
