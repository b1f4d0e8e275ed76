"""`make run`'s configuration: orthanc-config/orthanc.json with absolute paths and the environment overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orthanc_anonymizer.server.config import CHECKOUT, parse_configuration
from orthanc_anonymizer.server.launch import (
    CONFIG_FILE,
    LaunchError,
    effective_configuration,
    orthanc_environment,
    write_configuration,
)


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


def test_make_run_answers_this_host_only_unless_opened() -> None:
    config = effective_configuration({})
    assert config["RemoteAccessAllowed"] is False and config["AuthenticationEnabled"] is False
    assert config["HttpBindAddresses"] == ["127.0.0.1"]  # Orthanc 1.13 does not even listen elsewhere
    assert "RegisteredUsers" not in config


def test_remote_access_brings_authentication_its_users_and_no_development_secret(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('{"alice": "long password"}', encoding="utf-8")
    config = effective_configuration(
        {"ORTHANC_REMOTE_ACCESS": "1", "ORTHANC_USERS_FILE": str(users), "ANONYMIZER_SECRET": "s"}
    )
    assert config["RemoteAccessAllowed"] is True and config["AuthenticationEnabled"] is True
    assert "HttpBindAddresses" not in config  # every address, on Orthanc 1.13 too
    assert config["RegisteredUsers"] == {"alice": "long password"}
    assert config["Anonymizer"]["AllowDevelopmentSecret"] is False


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ORTHANC_REMOTE_ACCESS": "1", "ANONYMIZER_SECRET": "s"}, "ORTHANC_USERS_FILE"),
        ({"ORTHANC_REMOTE_ACCESS": "1", "ORTHANC_USERS_FILE": "users.json"}, "ANONYMIZER_SECRET"),
        ({"ORTHANC_REMOTE_ACCESS": "on"}, "ORTHANC_REMOTE_ACCESS"),
        (
            {"ORTHANC_REMOTE_ACCESS": "1", "ANONYMIZER_SECRET": "s", "ORTHANC_USERS_FILE": "/nonexistent"},
            "cannot be read",
        ),
    ],
)
def test_remote_access_without_users_or_secret_is_refused_naming_it(environ: dict[str, str], named: str) -> None:
    with pytest.raises(LaunchError, match=named):
        effective_configuration(environ)


@pytest.mark.parametrize("users", ["{}", "[]", '{"alice": ""}', '{"": "pw"}', "not json"])
def test_a_wrong_users_file_is_refused(tmp_path: Path, users: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(users, encoding="utf-8")
    with pytest.raises(LaunchError, match="ORTHANC_USERS_FILE"):
        effective_configuration(
            {"ORTHANC_REMOTE_ACCESS": "1", "ANONYMIZER_SECRET": "s", "ORTHANC_USERS_FILE": str(path)}
        )


def test_the_written_configuration_is_its_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "orthanc.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o644)
    write_configuration({"RegisteredUsers": {"alice": "pw"}}, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["RegisteredUsers"] == {"alice": "pw"}
