"""What `make run` execs: the launcher writes the effective configuration under ORTHANC_DATA and becomes Orthanc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests
from orthanc_server import free_port

pytestmark = pytest.mark.integration


def test_launcher_runs_orthanc_with_the_plugin_and_the_overrides(tmp_path) -> None:
    http, dicom = free_port(), free_port()
    data = tmp_path / "data"
    environ = {
        **os.environ,
        "ORTHANC_HTTP_PORT": str(http),
        "ORTHANC_DICOM_PORT": str(dicom),
        "ORTHANC_DATA": str(data),
        "ANONYMIZER_SECRET": "launcher-test",
    }
    log = (tmp_path / "launch.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "orthanc_anonymizer.launch", "run"], env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline, system = time.monotonic() + 180, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                system = requests.get(f"http://127.0.0.1:{http}/system", timeout=10).json()
                break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer while it starts
                time.sleep(0.1)
        assert system is not None, (tmp_path / "launch.log").read_text()
        assert system["DicomPort"] == dicom
        profiles = requests.get(f"http://127.0.0.1:{http}/anonymizer/profiles", timeout=10).json()
        assert profiles[0]["Name"] == "basic"
        config = json.loads((data / "orthanc.json").read_text())
        assert config["StorageDirectory"] == str(data)
        assert (data / "index").exists()  # embedded SQLite index under ORTHANC_DATA
        text = (tmp_path / "launch.log").read_text()
        assert f"http://localhost:{http}" in text
        assert "development secret" not in text  # ANONYMIZER_SECRET was given
    finally:
        process.terminate()
        process.wait(30)
        log.close()
