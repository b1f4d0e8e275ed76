"""What `make run` execs: the launcher writes the effective configuration under ORTHANC_DATA and becomes Orthanc.

By default Orthanc answers this host only: Orthanc 1.13.0 listens on loopback only (``HttpBindAddresses``); 1.10
and 1.12.7 have no HTTP bind address, so the port listens on every interface and Orthanc refuses every request that
does not come from loopback (``RemoteAccessAllowed`` false, set for all three); ``ORTHANC_REMOTE_ACCESS=1`` opens
it, only with the users of ``ORTHANC_USERS_FILE`` and a real secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from orthanc_server import free_port
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (``ip -4 addr``), or ``None``."""
    try:
        text = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in text.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            if not address.startswith("127."):
                return address
    return None


def clean_environment() -> dict[str, str]:
    """This process's environment without the launcher's overrides, but with ORTHANC_COMMAND (make test-compat's
    Orthanc 1.12.7 or 1.13.0, which the launcher runs as it would run Debian's)."""
    return {
        key: value
        for key, value in os.environ.items()
        if key == "ORTHANC_COMMAND" or not key.startswith(("ORTHANC_", "ANONYMIZER_"))
    }


@contextlib.contextmanager
def launched(tmp_path: Path, extra: dict[str, str]) -> Iterator[tuple[int, int, Path]]:
    """``python -m orthanc_anonymizer.server.launch run`` (what `make run` execs) on free ports; (http, dicom, log)."""
    http, dicom = free_port(), free_port()
    data = tmp_path / "data"
    environ = {
        **clean_environment(),
        "ORTHANC_HTTP_PORT": str(http),
        "ORTHANC_DICOM_PORT": str(dicom),
        "ORTHANC_DATA": str(data),
        **extra,
    }
    log_path = tmp_path / "launch.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orthanc_anonymizer.server.launch", "run"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    # Any answer means Orthanc listens (401 when authentication is on).
                    requests.get(f"http://127.0.0.1:{http}/system", timeout=10)
                    break
                except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer while it starts
                    time.sleep(0.2)
            assert process.poll() is None, log_path.read_text()
            yield http, dicom, log_path
        finally:
            process.terminate()
            process.wait(60)


def test_launcher_runs_orthanc_with_the_plugin_and_the_overrides(tmp_path) -> None:
    with launched(tmp_path, {"ANONYMIZER_SECRET": "launcher-test"}) as (http, dicom, log):
        system = requests.get(f"http://127.0.0.1:{http}/system", timeout=10).json()
        assert system["DicomPort"] == dicom
        profiles = requests.get(f"http://127.0.0.1:{http}/anonymizer/profiles", timeout=10).json()
        assert profiles[0]["Name"] == "basic"
        data = tmp_path / "data"
        config = json.loads((data / "orthanc.json").read_text())
        assert config["StorageDirectory"] == str(data)
        assert (data / "index").exists()  # embedded SQLite index under ORTHANC_DATA
        text = log.read_text()
        assert f"http://localhost:{http}" in text and "from this host only" in text
        assert "development secret" not in text  # ANONYMIZER_SECRET was given


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on ``port`` (``ss -ltnH``)."""
    text = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=10).stdout
    addresses = set()
    for line in text.splitlines():
        local = line.split()[3]
        host, _, listened = local.rpartition(":")
        if listened == str(port):
            addresses.add(host.strip("[]"))
    return addresses


def test_make_run_answers_this_host_only(tmp_path) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    with launched(tmp_path, {}) as (http, dicom, log):
        assert "development secret" in log.read_text()  # the default: fine for test data, on this host only
        local = requests.get(f"http://127.0.0.1:{http}/system", timeout=10)
        assert local.status_code == 200
        # What Orthanc Explorer warns about ("insecure": open to all without authentication) is gone.
        assert local.json()["IsHttpServerSecure"] is True
        version = tuple(int(part) for part in local.json()["Version"].split(".")[:2])
        if version >= (1, 13):
            # Orthanc 1.13 binds HTTP to "HttpBindAddresses": loopback only, nothing to connect to from elsewhere.
            assert listening_addresses(http) == {"127.0.0.1"}, listening_addresses(http)
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://{address}:{http}/system", timeout=10)
        else:
            # Orthanc 1.10.1 / 1.12.7 cannot bind HTTP to loopback: the port listens everywhere...
            assert listening_addresses(http) & {"0.0.0.0", "*", "::"}, listening_addresses(http)
            # ...and refuses what comes from elsewhere, before any route (the plugin's included) runs.
            for path in ("/system", "/patients", "/anonymizer/profiles", "/anonymizer/audit", "/app/explorer.html"):
                remote = requests.get(f"http://{address}:{http}{path}", timeout=10)
                assert remote.status_code in (401, 403), (path, remote.status_code)
                assert "PatientName" not in remote.text and "basic" not in remote.text
        # The DICOM port listens everywhere too (Orthanc has no DICOM bind address); it gives nothing out: no
        # modality is declared, so C-FIND (and C-MOVE, C-GET) are refused to every caller.
        with socket.create_connection((address, dicom), timeout=10):
            pass
        for data in make_study(Patient(name="Findable^Remote", id="PID-REMOTE"), 1, 1):
            assert requests.post(f"http://127.0.0.1:{http}/instances", data=data, timeout=30).status_code == 200
        find = subprocess.run(
            ["findscu", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=*", address, str(dicom)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Find Failed" in find.stderr and "Findable" not in find.stdout + find.stderr, find.stderr


def test_remote_access_needs_users_and_a_secret(tmp_path) -> None:
    address = non_loopback_address()
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "a long password for alice"}), encoding="utf-8")
    # Refused before Orthanc starts: without a users file, or with the public development secret.
    for extra, named in (
        ({"ORTHANC_REMOTE_ACCESS": "1", "ANONYMIZER_SECRET": "s"}, "ORTHANC_USERS_FILE"),
        ({"ORTHANC_REMOTE_ACCESS": "1", "ORTHANC_USERS_FILE": str(users)}, "ANONYMIZER_SECRET"),
        ({"ORTHANC_REMOTE_ACCESS": "maybe"}, "ORTHANC_REMOTE_ACCESS"),
    ):
        environ = clean_environment()
        refused = subprocess.run(
            [sys.executable, "-m", "orthanc_anonymizer.server.launch", "run"],
            env={**environ, "ORTHANC_DATA": str(tmp_path / "refused"), **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2 and named in refused.stderr, (extra, refused.stderr)
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    opened = {"ORTHANC_REMOTE_ACCESS": "1", "ORTHANC_USERS_FILE": str(users), "ANONYMIZER_SECRET": "remote-test"}
    with launched(tmp_path, opened) as (http, _, log):
        assert "open to other hosts, with authentication" in log.read_text()
        url = f"http://{address}:{http}/anonymizer/profiles"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=("alice", "wrong"), timeout=10).status_code == 401
        answer = requests.get(url, auth=("alice", "a long password for alice"), timeout=10)
        assert answer.status_code == 200 and answer.json()[0]["Name"] == "basic"
        written = tmp_path / "data" / "orthanc.json"  # holds the passwords: its owner's only
        assert written.stat().st_mode & 0o077 == 0
