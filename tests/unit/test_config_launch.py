"""`make run`'s configuration: orthanc-config/orthanc.json with absolute paths and the environment overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orthanc_anonymizer.config import CHECKOUT, parse_configuration
from orthanc_anonymizer.launch import CONFIG_FILE, LaunchError, effective_configuration, orthanc_environment


def test_defaults_are_the_contracts() -> None:
    config = effective_configuration({})
    assert config["HttpPort"] == 8042 and config["DicomPort"] == 4242
    assert config["StorageDirectory"] == config["IndexDirectory"] == str(CHECKOUT / "data")
    assert Path(config["PythonScript"]) == CHECKOUT / "plugin" / "entry.py"
    assert Path(config["PythonScript"]).is_file()
    assert {"AnonymizedFromResource", "AnonymizationProfile"} <= set(config["UserMetadata"])


def test_environment_overrides(tmp_path: Path) -> None:
    config = effective_configuration(
        {"ORTHANC_HTTP_PORT": "18042", "ORTHANC_DICOM_PORT": "14242", "ORTHANC_DATA": str(tmp_path)},
        {"Anonymizer": {"Workers": 1}, "AuthenticationEnabled": True},
    )
    assert (config["HttpPort"], config["DicomPort"]) == (18042, 14242)
    assert config["StorageDirectory"] == str(tmp_path)
    assert config["Anonymizer"]["Workers"] == 1
    assert config["Anonymizer"]["DefaultProfile"] == "basic"  # merged, not replaced
    assert config["AuthenticationEnabled"] is True


def test_bad_port_is_named() -> None:
    with pytest.raises(LaunchError, match="ORTHANC_HTTP_PORT"):
        effective_configuration({"ORTHANC_HTTP_PORT": "http"})


def test_shipped_configuration_passes_the_plugins_checks() -> None:
    config = effective_configuration({})
    checked = parse_configuration(config, {}, CHECKOUT)
    assert checked.development_secret  # the development config allows it, and only it
    assert "AllowDevelopmentSecret" in json.loads(CONFIG_FILE.read_text())["Anonymizer"]


def test_orthanc_runs_without_nagle() -> None:
    assert orthanc_environment({})["TCP_NODELAY"] == "1"
