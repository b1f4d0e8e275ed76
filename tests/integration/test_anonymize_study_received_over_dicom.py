"""A generated multi-series study sent with dcmtk's storescu to Orthanc's DICOM port, then anonymized."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from checks import assert_anonymized_copy, read
from study_generator import Patient, make_study, write_files

pytestmark = pytest.mark.integration


def storescu(server, paths) -> None:
    if shutil.which("storescu") is None:
        pytest.fail("dcmtk's storescu is missing: run `make apt`")
    subprocess.run(
        ["storescu", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), *map(str, paths)],
        check=True,
        timeout=120,
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
    )


def test_study_sent_with_storescu_becomes_a_complete_anonymized_study(orthanc, tmp_path) -> None:
    patient = Patient(name="Dicomsender^Leopoldina", id="PID-DIMSE-8812", institution="Hospital Sankt Dimse")
    files = make_study(patient, series=3, per_series=4)
    storescu(orthanc, write_files(files, tmp_path / "study"))
    study_uid = read(files[0]).StudyInstanceUID
    (study,) = orthanc.post("/tools/lookup", study_uid).json()
    originals = {}
    for item in orthanc.json(f"/studies/{study['ID']}/instances"):
        originals[item["ID"]] = orthanc.get(f"/instances/{item['ID']}/file").content
    # Orthanc rewrites the file meta of what arrives over DICOM; the datasets are what was sent.
    assert sorted(read(data).SOPInstanceUID for data in originals.values()) == sorted(
        read(data).SOPInstanceUID for data in files
    )

    answer = orthanc.anonymize("studies", study["ID"])
    assert_anonymized_copy(orthanc, "studies", study["ID"], originals, answer)
    copy = orthanc.json(f"/studies/{answer['Resource']}")
    assert len(copy["Series"]) == 3
    assert copy["PatientMainDicomTags"]["PatientName"] != patient.name

    # The audit trail names the user, the resources, the profile and the verdict, and no patient data.
    (record,) = [r for r in orthanc.json("/anonymizer/audit") if r.get("Sequence") == answer["Audit"]]
    assert record["Source"] == study["ID"]
    assert record["Result"] == answer["Resource"]
    assert record["User"] == "anonymous"
    assert record["Instances"] == record["SourceInstances"] == 12
    assert record["Settings"]["Profile"] == "basic"
    assert record["ResidualPhi"] == {"Checked": 12, "NotChecked": 0, "Leaking": 0}
    assert orthanc.json("/anonymizer/audit/verify")["Valid"] is True

    # No identifying value of this patient in Orthanc's log nor in the plugin's state files.
    texts = [orthanc.log_text()] + [path.read_text() for path in orthanc.state.rglob("*.json*")]
    for value in (patient.id, "Leopoldina", "Dicomsender", "Sankt Dimse"):
        assert not any(value in text for text in texts), value
