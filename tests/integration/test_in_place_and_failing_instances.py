"""InPlace deletes the original only when every copy is stored and verified; a failing instance spares the rest."""

from __future__ import annotations

import pytest
from checks import instance_files, metadata, read
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, make_study, to_bytes

pytestmark = pytest.mark.integration


def leaky_study(patient: Patient) -> list[bytes]:
    """Three instances; the second names the patient where the profile keeps the value (Manufacturer)."""
    study, series = generate_uid(), generate_uid()
    return [
        to_bytes(make_instance(patient, study, series, 1, 1)),
        to_bytes(make_instance(patient, study, series, 1, 2, Manufacturer="Saltimbocca Testperson Imaging")),
        to_bytes(make_instance(patient, study, series, 1, 3)),
    ]


def test_in_place_replaces_the_original_after_every_copy_is_stored(orthanc) -> None:
    files = make_study(Patient(name="Inplace^Bartholomew", id="PID-INPLACE-1"), series=2, per_series=2)
    study = orthanc.upload_study(files)
    answer = orthanc.anonymize("studies", study, {"InPlace": True})
    assert answer["Deleted"] is True
    assert answer["Failed"] == []
    assert orthanc.get(f"/studies/{study}").status_code == 404
    copies = instance_files(orthanc, "studies", answer["Resource"])
    assert len(copies) == 4
    assert metadata(orthanc, "studies", answer["Resource"], "AnonymizedFromResource") == study
    assert all(read(data).PatientIdentityRemoved == "YES" for data in copies.values())


def test_failing_instance_is_reported_and_the_others_stored(orthanc) -> None:
    patient = Patient(name="Testperson^Saltimbocca", id="PID-FAIL-1")
    files = leaky_study(patient)
    study = orthanc.upload_study(files)
    originals = instance_files(orthanc, "studies", study)

    answer = orthanc.anonymize("studies", study, {"InPlace": True})

    (failed,) = answer["Failed"]
    leaky_id = next(oid for oid, data in originals.items() if read(data).get("Manufacturer", "").startswith("Salt"))
    assert failed["Instance"] == leaky_id
    assert "residual PHI" in failed["Reason"] and "0008,0070" in failed["Reason"]
    assert "Saltimbocca" not in failed["Reason"]
    assert answer["Instances"] == 2
    assert len(instance_files(orthanc, "studies", answer["Resource"])) == 2
    # InPlace was asked, but an instance failed: the original stays, untouched.
    assert answer["Deleted"] is False
    assert instance_files(orthanc, "studies", study) == originals
    record = orthanc.json("/anonymizer/audit")[-1]
    assert record["Sequence"] == answer["Audit"]
    assert record["ResidualPhi"]["Leaking"] == 1
    assert record["Failed"] == answer["Failed"]


def test_copy_that_would_replace_its_original_is_refused(orthanc) -> None:
    patient = Patient(name="Sameidentity^Eudora", id="PID-SAME-ID")
    study = orthanc.upload_study(make_study(patient, series=1, per_series=2))
    originals = instance_files(orthanc, "studies", study)
    answer = orthanc.anonymize("studies", study, {"Options": ["RetainUIDs"], "PatientID": patient.id})
    assert answer["Instances"] == 0 and answer["Resource"] is None
    assert len(answer["Failed"]) == 2
    assert all("would replace it" in failed["Reason"] for failed in answer["Failed"])
    assert instance_files(orthanc, "studies", study) == originals
    # With another PatientID the retained UIDs are fine: Orthanc files the copy apart from the original.
    answer = orthanc.anonymize("studies", study, {"Options": ["RetainUIDs"]})
    assert answer["Failed"] == [] and answer["Instances"] == 2
    copies = instance_files(orthanc, "studies", answer["Resource"])
    assert {read(data).SOPInstanceUID for data in copies.values()} == {
        read(data).SOPInstanceUID for data in originals.values()
    }
