"""The compatibility harness (``tools/compat/``): which Debian mirror it builds the roots from, what each root is made
of, and each root's Orthanc (Debian trixie's 1.12 with orthanc-python 5.0, Debian forky's 1.13 with orthanc-python
7.1) started through ``run-in-<suite>.sh`` exactly as ``make test-compat`` has the integration fixture start it
(``ORTHANC_COMMAND``).

The mirror and package-list tests need only bash. The others need the root and its venv (``make compat-venv-<suite>``)
and are skipped without them, so ``make test`` on a machine without a root runs only the first ones. Under
``make test-compat-<suite>`` (``COMPAT_SUITE`` set) they run for that root only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import requests
from pydicom.data import get_testdata_file

from orthanc_anonymizer.server.launch import effective_configuration, orthanc_environment, write_configuration

CHECKOUT = Path(__file__).resolve().parents[2]
COMPAT = CHECKOUT / "tools" / "compat"
SECRET = "compat-test-secret"


def _integration_helper(name: str) -> ModuleType:
    """A plain module of ``tests/integration`` (loaded by path: this folder is collected on its own too)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CHECKOUT / "tests" / "integration" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


# Debian's PostgreSQL server on the host (bookworm's 15 on this project's machines), for the roots' Orthanc's index.
POSTGRESQL_CLUSTER = _integration_helper("postgresql_cluster")
POSTGRESQL_BIN = POSTGRESQL_CLUSTER.POSTGRESQL_BIN
COMPAT_ROOTS = _integration_helper("compat_roots")
if TYPE_CHECKING:
    from compat_roots import CompatRoot
TESTED = COMPAT_ROOTS.tested_roots()


@pytest.fixture(params=TESTED, ids=[root.suite for root in TESTED])
def compat_root(request: pytest.FixtureRequest) -> CompatRoot:
    """Each tested root; the test is skipped where it is not built."""
    root: CompatRoot = request.param
    root.skip_unless_built()
    return root


# -- the mirror ---------------------------------------------------------------------------------------------------


def mirrors(apt: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """``compat_mirror`` and ``compat_security_mirror`` of ``common.sh`` against the apt folder ``apt``."""
    script = f'source "{COMPAT}/common.sh"; compat_mirror; compat_security_mirror'
    inherited = {key: value for key, value in os.environ.items() if not key.endswith("MIRROR")}
    env = {**inherited, "COMPAT_APT_DIR": str(apt), "COMPAT_HOST_CODENAME": "bookworm", **environ}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)


def apt_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path / "apt"


DEB822 = {
    "sources.list.d/aaa-vendor.sources": "Types: deb\nURIs: https://vendor.example/apt/\nSuites: nodistro\n",
    "sources.list.d/debian.sources": (
        "Types: deb\nURIs: http://old.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "Types: deb\n# http://snapshot.example/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    ),
}
ONE_LINE = {
    "sources.list": (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://ftp.example.org/debian bookworm main contrib\n"
        "deb http://security.example.org/debian-security bookworm-security main\n"
    )
}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (DEB822, ["http://mirror.example/debian", "http://mirror.example/debian-security"]),
        (ONE_LINE, ["http://ftp.example.org/debian", "http://security.example.org/debian-security"]),
    ],
    ids=["deb822-skipping-disabled-and-foreign-entries", "one-line-with-options"],
)
def test_the_mirror_is_the_entry_of_the_host_release(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    result = mirrors(apt_folder(tmp_path, files))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_no_mirror_for_the_host_release_names_the_override(tmp_path: Path) -> None:
    apt = apt_folder(tmp_path, {"sources.list": "deb http://ftp.example.org/debian bullseye main\n"})
    result = mirrors(apt)
    assert result.returncode == 1
    assert "COMPAT_MIRROR" in result.stderr


def test_the_override_wins(tmp_path: Path) -> None:
    apt = apt_folder(tmp_path, {"sources.list": "deb http://ftp.example.org/debian bookworm main\n"})
    result = mirrors(apt, COMPAT_MIRROR="http://override.example/debian/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://override.example/debian"]


# -- what a root is made of -------------------------------------------------------------------------------------


def common(script: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash after sourcing ``common.sh``, with ``environ`` over this process's environment (less
    the COMPAT_ settings)."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("COMPAT_")}
    return subprocess.run(
        ["bash", "-c", f'source "{COMPAT}/common.sh"; {script}'],
        env={**inherited, **environ},
        capture_output=True,
        text=True,
        check=False,
    )


def packages_and_key(**environ: str) -> tuple[list[str], str]:
    result = common("compat_packages; compat_root_key", **environ)
    assert result.returncode == 0, result.stderr
    packages, key = result.stdout.splitlines()
    return packages.split(), key


def test_each_root_holds_the_makefiles_packages_and_its_own() -> None:
    trixie, trixie_key = packages_and_key(COMPAT_SUITE="trixie")
    forky, forky_key = packages_and_key(COMPAT_SUITE="forky")
    for packages in (trixie, forky):
        assert {"orthanc", "orthanc-python", "orthanc-postgresql", "python3-dev", "ca-certificates"} <= set(packages)
        assert not {"chromium", "postgresql"} & set(packages)  # the host's serve the tests
    # pyjpegls builds from source on Python 3.14; the OE2 plugin needs Orthanc's framework library at run time.
    assert set(forky) - set(trixie) == {"g++", "liborthancframework1.13.0"}
    assert trixie_key != forky_key


def test_extra_packages_are_added_once_and_make_another_root() -> None:
    forky, key = packages_and_key(COMPAT_SUITE="forky")
    extended, extended_key = packages_and_key(COMPAT_SUITE="forky", COMPAT_EXTRA_PACKAGES="cmake g++ orthanc-dev")
    assert extended == [*forky, "cmake", "orthanc-dev"]
    assert extended_key != key


def test_forky_apt_skips_the_release_files_date_and_trixie_apt_does_not() -> None:
    """forky's Release file on a mirror that is not refreshed is past its Valid-Until; trixie's is kept current."""
    forky = common("compat_suite_setting apt; compat_suite_setting suites", COMPAT_SUITE="forky")
    trixie = common("compat_suite_setting apt; compat_suite_setting suites", COMPAT_SUITE="trixie")
    assert forky.stdout.splitlines() == ['Acquire::Check-Valid-Until "false";', "forky"]
    assert trixie.stdout.splitlines() == ["", "trixie trixie-updates"]


def test_an_unknown_suite_is_refused_by_name() -> None:
    result = common("compat_packages", COMPAT_SUITE="sid")
    assert result.returncode == 1
    assert "COMPAT_SUITE=sid is none of: trixie forky" in result.stderr


# -- commands in the root -----------------------------------------------------------------------------------------


def test_the_root_python_is_the_suites_and_sees_the_checkout_and_its_venv_at_their_own_paths(
    compat_root: CompatRoot,
) -> None:
    code = (
        "import json, sys, orthanc_anonymizer, pydicom;"
        "print(json.dumps([list(sys.version_info[:2]), sys.prefix, orthanc_anonymizer.__file__, pydicom.__version__]))"
    )
    result = subprocess.run(
        [str(compat_root.run), ".venv/bin/python", "-c", code],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=True,
    )
    version, prefix, package, _ = json.loads(result.stdout)
    assert ".".join(map(str, version)) == compat_root.python
    assert prefix == str(CHECKOUT / ".venv")
    assert package.startswith(str(CHECKOUT / "plugin" / "orthanc_anonymizer"))


def test_exit_status_and_working_directory_pass_through(compat_root: CompatRoot) -> None:
    result = subprocess.run(
        [str(compat_root.run), "/bin/sh", "-c", "pwd; . /etc/os-release; echo $VERSION_CODENAME; exit 7"],
        cwd=CHECKOUT / "tests",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout.split() == [str(CHECKOUT / "tests"), compat_root.suite]


# -- each root's Orthanc: 1.12 with orthanc-python 5.0, 1.13 with 7.1 ---------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RootOrthanc:
    """``run-in-<suite>.sh /usr/sbin/Orthanc <config>`` on free loopback ports, as ``make test-compat`` starts it."""

    def __init__(self, compat_root: CompatRoot, folder: Path, overrides: dict[str, Any] | None = None) -> None:
        self.folder = folder
        environ = {
            "ORTHANC_HTTP_PORT": str(free_port()),
            "ORTHANC_DICOM_PORT": str(free_port()),
            "ORTHANC_DATA": str(folder / "storage"),
        }
        self.config = effective_configuration(environ, overrides)
        self.url = f"http://127.0.0.1:{self.config['HttpPort']}"
        self.log = folder / "orthanc.log"
        config_path = write_configuration(self.config, folder / "orthanc.json")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(compat_root.run), "/usr/sbin/Orthanc", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=orthanc_environment({**os.environ, "ANONYMIZER_SECRET": SECRET}),
            )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"Orthanc exited:\n{self.log_text()}"
            try:
                if requests.get(self.url + "/system", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer while it starts
                pass
            time.sleep(0.1)
        raise AssertionError(f"Orthanc did not answer within {timeout} s:\n{self.log_text()}")

    def stop(self) -> int:
        """SIGTERM, as the integration fixture stops Orthanc; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(30)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]

    def json(self, path: str) -> Any:
        response = requests.get(self.url + path, timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()


@pytest.fixture
def root_orthanc(compat_root: CompatRoot, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RootOrthanc]:
    server = RootOrthanc(compat_root, tmp_path, getattr(request, "param", None))
    try:
        server.wait_ready()
        yield server
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.stop()
        server.process.kill()  # nothing to do once it has stopped
        server.process.wait()


def anonymize_one_study(server: RootOrthanc) -> None:
    """Upload a pydicom test file, anonymize its study, check the link and the audit chain."""
    upload = requests.post(
        server.url + "/instances",
        data=Path(str(get_testdata_file("CT_small.dcm"))).read_bytes(),
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    study = upload.json()["ParentStudy"]
    response = requests.post(f"{server.url}/anonymizer/studies/{study}", json={}, timeout=120)
    assert response.status_code == 200, f"{response.text}\n{server.log_text()}"
    answer = response.json()
    assert answer["Instances"] == 1 and answer["Failed"] == []
    assert server.json(f"/anonymizer/studies/{study}/links")["Copies"] == [answer["Resource"]]
    assert server.json("/anonymizer/audit/verify")["Valid"] is True


@pytest.mark.integration
@pytest.mark.parametrize(
    "root_orthanc",
    [None, {"Python": {"AllowThreads": True}}],
    ids=["PythonScript", "PythonScript-and-AllowThreads"],
    indirect=True,
)
def test_the_roots_orthanc_runs_the_plugin_on_its_orthanc_python(
    compat_root: CompatRoot, root_orthanc: RootOrthanc
) -> None:
    """trixie: Orthanc 1.12 on orthanc-python 5.0; forky: Orthanc 1.13 on orthanc-python 7.1."""
    server = root_orthanc
    # The caller holds Orthanc's own PID, chrooted into the root: SIGTERM reaches it directly.
    assert os.readlink(f"/proc/{server.process.pid}/exe") == str(compat_root.root / "usr/sbin/Orthanc")
    assert os.readlink(f"/proc/{server.process.pid}/root") == str(compat_root.root)
    system = server.json("/system")
    assert system["Version"].startswith(compat_root.orthanc)
    assert system["DatabaseBackendPlugin"] is None  # the embedded SQLite index
    assert server.json("/plugins/python")["Version"] == compat_root.orthanc_python
    assert "basic" in {profile["Name"] for profile in server.json("/anonymizer/profiles")}
    anonymize_one_study(server)
    assert server.stop() == 0, server.log_text()
    assert "Orthanc has stopped" in server.log_text()


@pytest.fixture
def postgresql() -> Iterator[int]:
    """A throwaway PostgreSQL cluster of the host's server on a free loopback port, trusting logins; its port."""
    with POSTGRESQL_CLUSTER.postgresql_cluster() as server:
        yield server.port


@pytest.mark.integration
@pytest.mark.skipif(POSTGRESQL_BIN is None, reason="no PostgreSQL server on the host (Debian postgresql)")
def test_the_roots_orthanc_with_its_postgresql_index_plugin_runs_the_plugin(
    compat_root: CompatRoot, tmp_path: Path, postgresql: int
) -> None:
    """The production set-up (docker-compose.yml: PostgreSQL index) on the same Orthanc and plugin generation."""
    overrides = {
        "Plugins": [
            "/usr/share/orthanc/plugins/libOrthancPython.so",
            "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so",
        ],
        "PostgreSQL": {
            "EnableIndex": True,
            "EnableStorage": False,
            "Host": "127.0.0.1",
            "Port": postgresql,
            "Database": "orthanc",
            "Username": "postgres",
            "Password": "",
            "EnableSsl": False,
            "Lock": False,
        },
    }
    server = RootOrthanc(compat_root, tmp_path, overrides)
    try:
        server.wait_ready()
        assert "PostgreSQLIndex" in str(server.json("/system")["DatabaseBackendPlugin"])
        assert server.json("/plugins/postgresql-index")["Version"] == compat_root.postgresql_index
        anonymize_one_study(server)
        assert server.stop() == 0, server.log_text()
    finally:
        server.process.kill()
        server.process.wait()
