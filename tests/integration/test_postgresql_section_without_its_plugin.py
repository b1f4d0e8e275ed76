"""A "PostgreSQL" section that no loaded plugin reads (Orthanc then uses SQLite, as Orthanc's own integration
configuration does) does not stop Orthanc: SharedState follows the index Orthanc actually uses, and the log names
the setting that cannot be honoured."""

from __future__ import annotations

import pytest
from checks import instance_files, read
from orthanc_server import free_port
from study_generator import Patient, make_study

from orthanc_anonymizer.server.launch import PYTHON_PLUGIN

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("shared_state", ["Auto", "PostgreSQL"])
def test_an_orthanc_on_sqlite_with_a_postgresql_section_starts_and_anonymizes(server_factory, shared_state) -> None:
    nobody_listens = free_port()  # were the plugin to connect there, it could not
    server = server_factory(
        f"sqlite-{shared_state}",
        overrides={
            "Plugins": [PYTHON_PLUGIN],
            "PostgreSQL": {"EnableIndex": True, "Host": "127.0.0.1", "Port": nobody_listens, "Password": "unused"},
            "Anonymizer": {"SharedState": shared_state},
        },
    ).start()
    assert server.json("/system").get("DatabaseBackendPlugin") is None  # Orthanc runs on SQLite
    patient = Patient(name="Sqlite^Perpetua", id="PID-SQLITE-1")
    study = server.upload_study(make_study(patient, series=1, per_series=2))
    answer = server.anonymize("studies", study, {})
    assert answer["Failed"] == [] and answer["Instances"] == 2
    assert all(
        read(data).PatientID != patient.id for data in instance_files(server, "studies", answer["Resource"]).values()
    )
    assert server.json(f"/anonymizer/studies/{study}/links")["Copies"] == [answer["Resource"]]
    assert server.json("/anonymizer/audit/verify")["Valid"] is True
    # Kept here, as on any SQLite Orthanc, and the log says which setting could not be honoured, and why.
    assert (server.state / "audit.jsonl").exists() and (server.state / "links.sqlite").exists()
    log = server.log_text()
    assert f"Anonymizer.SharedState {shared_state} cannot be honoured" in log
    assert "index is SQLite, not PostgreSQL" in log
    assert "unused" not in log
