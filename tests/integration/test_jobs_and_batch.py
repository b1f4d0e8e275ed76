"""Asynchronous requests and batches answer a job at once; the job's record shows state, progress and results."""

from __future__ import annotations

import pytest
from checks import instance_files, read
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def test_asynchronous_request_answers_a_job_that_ends_with_the_copy(orthanc) -> None:
    study = orthanc.upload_study(make_study(Patient(name="Async^Rosalind", id="PID-ASYNC-1"), 2, 3))
    answer = orthanc.anonymize("studies", study, {"Asynchronous": True})
    assert set(answer) == {"Job", "Path"}  # a job to follow, not the result: how long it takes is for the bench
    record = orthanc.wait_job(answer["Job"])
    assert record["State"] == "Success"
    assert record["Progress"] == 100
    assert record["Errors"] == []
    (result,) = record["Results"]
    assert result["Source"] == study
    assert result["Instances"] == 6
    copies = instance_files(orthanc, "studies", result["Resource"])
    assert len(copies) == 6
    assert all(str(read(data).PatientName) != "Async^Rosalind" for data in copies.values())


def test_batch_runs_every_resource_and_reports_the_unknown_one(orthanc) -> None:
    studies = [
        orthanc.upload_study(make_study(Patient(name=f"Batch^Number{n}", id=f"PID-BATCH-{n}"), 1, 2)) for n in range(3)
    ]
    unknown = "00000000-00000000-00000000-00000000-00000000"
    response = orthanc.post(
        "/anonymizer/batch", {"Level": "Study", "Resources": [*studies, unknown], "Options": ["RetainPatientChars"]}
    )
    assert response.status_code == 200, response.text
    record = orthanc.wait_job(response.json()["Job"])
    assert record["State"] == "Failure"
    assert record["Level"] == "Study"
    assert record["Settings"]["Options"] == ["RetainPatientChars"]
    assert any(unknown in error for error in record["Errors"])
    stored = [result for result in record["Results"] if "Resource" in result]
    assert sorted(result["Source"] for result in stored) == sorted(studies)
    for result in stored:
        assert result["Instances"] == 2
        for copy in instance_files(orthanc, "studies", result["Resource"]).values():
            # RetainPatientChars keeps the sex; the basic profile alone would empty it.
            assert read(copy).PatientSex == "M"


def test_unknown_job_is_404(orthanc) -> None:
    assert orthanc.get("/anonymizer/jobs/5b1e3a52-0000-4000-8000-000000000000").status_code == 404
    assert orthanc.get("/anonymizer/jobs/not-a-job").status_code == 404


@pytest.mark.parametrize(
    ("level", "key"), [("Series", "ParentSeries"), ("Instance", "ID"), ("Patient", "ParentPatient")]
)
def test_batch_at_each_level(orthanc, level, key) -> None:
    resources = []
    for n in range(2):
        stored = [
            orthanc.upload(data) for data in make_study(Patient(name=f"Level^{level}{n}", id=f"L-{level}-{n}"), 1, 2)
        ]
        resources.append(stored[0][key])
    response = orthanc.post("/anonymizer/batch", {"Level": level, "Resources": resources, "DryRun": True})
    record = orthanc.wait_job(response.json()["Job"])
    assert record["State"] == "Success" and record["Type"] == "DryRun"
    assert [result["Source"] for result in record["Results"]] == resources
    expected = 1 if level == "Instance" else 2
    assert all(result["Instances"] == expected and result["Changes"] for result in record["Results"])
    response = orthanc.post("/anonymizer/batch", {"Level": level, "Resources": resources})
    record = orthanc.wait_job(response.json()["Job"])
    assert record["State"] == "Success"
    for result in record["Results"]:
        assert result["Level"] == level and result["Instances"] == expected
        segment = {"Series": "series", "Instance": "instances", "Patient": "patients"}[level]
        assert orthanc.json(f"/anonymizer/{segment}/{result['Resource']}/links")["Source"] == result["Source"]
