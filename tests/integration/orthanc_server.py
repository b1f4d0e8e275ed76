"""A real Orthanc (Debian packages) with the plugin, on free loopback ports, started from orthanc-config/.

Imported by the integration tests' conftest (fixtures), by tests that start servers of their own, by the browser
tests and by the benchmarks: a plain module, so that no one imports a ``conftest``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from orthanc_anonymizer.server.launch import effective_configuration, orthanc_environment, write_configuration

# The command that runs Orthanc; `make test-compat` sets ORTHANC_COMMAND to run Debian trixie's Orthanc 1.12 with
# orthanc-python 5.0, then Debian forky's 1.13 with orthanc-python 7.1, instead (tools/compat/run-in-trixie.sh
# /usr/sbin/Orthanc, run-in-forky.sh; see tools/compat/README.md).
ORTHANC = shlex.split(os.environ.get("ORTHANC_COMMAND", "")) or [shutil.which("Orthanc") or "/usr/sbin/Orthanc"]
SECRET = "integration-test-secret"
_SERVERS: list[OrthancServer] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OrthancServer:
    """One Orthanc process with the plugin; ``overrides`` are top-level settings (``Anonymizer`` merged)."""

    def __init__(
        self,
        folder: Path,
        overrides: dict[str, Any] | None = None,
        secret: str | None = SECRET,
        auth: tuple[str, str] | None = None,
        environment: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.folder = folder
        self.environment = dict(environment or {})
        """Extra environment variables for Orthanc (e.g. the test instrumentation's)."""
        self.prefix = list(prefix or [])
        """A command Orthanc runs under (the benchmarks' ``taskset -c 0``); its worker processes inherit it."""
        self.http_port, self.dicom_port = free_port(), free_port()
        self.storage = folder / "storage"
        environ = {
            "ORTHANC_HTTP_PORT": str(self.http_port),
            "ORTHANC_DICOM_PORT": str(self.dicom_port),
            "ORTHANC_DATA": str(self.storage),
        }
        self.config = effective_configuration(environ, overrides)
        self.config_path = write_configuration(self.config, folder / "orthanc.json")
        self.log_path = folder / "orthanc.log"
        self.secret = secret
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.session = requests.Session()
        if auth:
            self.session.auth = auth
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def state(self) -> Path:
        """The plugin's state folder (audit trail, job records, links index)."""
        return self.storage / "anonymizer"

    def launch(self) -> subprocess.Popen[bytes]:
        environ = {key: value for key, value in os.environ.items() if key != "ANONYMIZER_SECRET"}
        if self.secret is not None:
            environ["ANONYMIZER_SECRET"] = self.secret
        environ.update(self.environment)
        self.storage.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.prefix, *ORTHANC, str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=orthanc_environment(environ),
        )
        log.close()
        _SERVERS.append(self)
        return self.process

    def start(self, timeout: float = 180.0) -> OrthancServer:
        process = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{self.log_tail()}")
            try:
                if self.session.get(self.url + "/system", timeout=10).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer while it starts
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self in _SERVERS:
            _SERVERS.remove(self)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- REST helpers --------------------------------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=kwargs.pop("timeout", 60), **kwargs)

    def post(self, path: str, body: object = None, **kwargs: Any) -> requests.Response:
        if body is not None and not isinstance(body, (bytes, str)):
            kwargs["json"] = body
        elif body is not None:
            kwargs["data"] = body
        return self.session.post(self.url + path, timeout=kwargs.pop("timeout", 120), **kwargs)

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def upload(self, data: bytes) -> dict[str, Any]:
        response = self.post("/instances", data, headers={"Content-Type": "application/dicom"})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def upload_study(self, files: list[bytes]) -> str:
        """Upload ``files`` (one study) and return the study's Orthanc ID."""
        studies = {self.upload(data)["ParentStudy"] for data in files}
        assert len(studies) == 1
        return studies.pop()

    def anonymize(self, level: str, resource: str, body: object = None, status: int = 200) -> dict[str, Any]:
        response = self.post(f"/anonymizer/{level}/{resource}", body if body is not None else {})
        assert response.status_code == status, f"{response.status_code}: {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    def wait_job(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record: dict[str, Any] = self.json(f"/anonymizer/jobs/{job_id}")
            if record["State"] in ("Success", "Failure"):
                return record
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not end within {timeout} s")
