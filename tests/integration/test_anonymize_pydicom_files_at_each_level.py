"""pydicom's own test files, uploaded over HTTP and anonymized at the instance, series, study and patient level."""

from __future__ import annotations

from pathlib import Path

import pytest
from checks import assert_anonymized_copy, instance_files, read
from pydicom.data import get_testdata_file
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration

PARENT_KEY = {"instances": "ID", "series": "ParentSeries", "studies": "ParentStudy", "patients": "ParentPatient"}


@pytest.mark.parametrize(
    ("filename", "level"),
    [
        ("CT_small.dcm", "instances"),
        ("MR_small.dcm", "series"),
        ("rtplan.dcm", "studies"),
        ("JPEG2000.dcm", "studies"),
    ],
)
def test_pydicom_file_becomes_a_linked_anonymized_copy(orthanc, filename, level) -> None:
    data = Path(get_testdata_file(filename)).read_bytes()
    stored = orthanc.upload(data)
    resource = stored[PARENT_KEY[level]]
    answer = orthanc.anonymize(level, resource)
    copies = assert_anonymized_copy(orthanc, level, resource, {stored["ID"]: data}, answer)
    # Pixel data passes through untouched, whatever its encoding.
    (copy,) = copies.values()
    assert read(copy).get("PixelData") == read(data).get("PixelData")


def test_patient_level_anonymizes_every_study_of_the_patient(orthanc) -> None:
    patient = Patient(name="Patientlevel^Octavia", id="PID-PATIENT-LEVEL")
    first, second = make_study(patient, series=1, per_series=2), make_study(patient, series=2, per_series=1)
    originals = {}
    for data in first + second:
        stored = orthanc.upload(data)
        originals[stored["ID"]] = data
    patient_id = stored["ParentPatient"]
    answer = orthanc.anonymize("patients", patient_id)
    assert_anonymized_copy(orthanc, "patients", patient_id, originals, answer)
    assert len(orthanc.json(f"/patients/{answer['Resource']}")["Studies"]) == 2
    assert instance_files(orthanc, "patients", patient_id) == originals


def test_chosen_patient_name_and_id_are_used(orthanc) -> None:
    files = make_study(Patient(name="Chosen^Valentina", id="PID-CHOSEN"), series=1, per_series=2)
    study = orthanc.upload_study(files)
    answer = orthanc.anonymize("studies", study, {"PatientName": "RESEARCH^042", "PatientID": "R-042"})
    for data in instance_files(orthanc, "studies", answer["Resource"]).values():
        ds = read(data)
        assert str(ds.PatientName) == "RESEARCH^042"
        assert ds.PatientID == "R-042"
