"""Issue 14 item 5 on a real Orthanc: a copy's UIDs belong to it. Two copies of one study made under two chosen
patient identities, or for two projects, are two studies sharing no UID; the same settings twice give one copy.
The audit record names the project; a bad project is a 400 naming it."""

from __future__ import annotations

import time

import pytest
from checks import instance_files, read
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration

UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _uids(orthanc, study: str) -> set[str]:
    found: set[str] = set()
    for data in instance_files(orthanc, "studies", study).values():
        dataset = read(data)
        found |= {str(dataset[keyword].value) for keyword in UID_KEYWORDS if keyword in dataset}
    return found


def test_copies_under_other_identities_or_projects_are_separate_studies_sharing_no_uid(orthanc) -> None:
    study = orthanc.upload_study(make_study(Patient(name="Scope^Ada", id="PID-SCOPE-1"), 2, 2))
    bodies = {
        "plain": {},
        "subject A": {"PatientName": "TRIAL^A", "PatientID": "SUBJ-A"},
        "subject B": {"PatientName": "TRIAL^B", "PatientID": "SUBJ-B"},
        "project LUNG": {"Project": "LUNG-2026"},
        "project CARDIO": {"Project": "CARDIO"},
        "project LUNG, subject A": {"Project": "LUNG-2026", "PatientName": "TRIAL^A", "PatientID": "SUBJ-A"},
    }
    copies = {name: orthanc.anonymize("studies", study, body) for name, body in bodies.items()}
    resources = {name: answer["Resource"] for name, answer in copies.items()}
    assert len(set(resources.values())) == len(bodies), resources
    uids = {name: _uids(orthanc, resource) for name, resource in resources.items()}
    names = list(bodies)
    for index, name in enumerate(names):
        assert len(uids[name]) >= 4 * 2  # 4 instances: SOP, + study, series, frame of reference
        for other in names[index + 1 :]:
            assert not uids[name] & uids[other], (name, other)
    # One Study Instance UID is one study in Orthanc: each copy's UID names only its own study.
    for name, resource in resources.items():
        (study_uid,) = {
            str(read(data).StudyInstanceUID) for data in instance_files(orthanc, "studies", resource).values()
        }
        found = orthanc.post("/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).json()
        assert found == [resource], name
    # The same settings again: the same copy, not a new study.
    for name in ("plain", "subject A", "project LUNG"):
        again = orthanc.anonymize("studies", study, bodies[name])
        assert again["Resource"] == resources[name]
        assert _uids(orthanc, again["Resource"]) == uids[name]
    # The audit names the project (not PHI) in the settings of each copy's record.
    for name in ("project LUNG", "plain"):
        record = orthanc.json(f"/anonymizer/audit?since={copies[name]['Audit'] - 1}&limit=1")[0]
        assert record["Sequence"] == copies[name]["Audit"]
        assert record["Settings"]["Project"] == bodies[name].get("Project", "")
    links = orthanc.json(f"/anonymizer/studies/{study}/links")
    assert set(resources.values()) <= set(links["Copies"])


def test_a_batch_job_carries_the_project(orthanc) -> None:
    study = orthanc.upload_study(make_study(Patient(name="Scope^Batch", id="PID-SCOPE-2"), 1, 2))
    direct = orthanc.anonymize("studies", study, {"Project": "BATCH-P"})
    response = orthanc.post("/anonymizer/batch", {"Level": "Study", "Resources": [study], "Project": "BATCH-P"})
    assert response.status_code == 200, response.text
    record = orthanc.wait_job(response.json()["Job"])
    assert record["State"] == "Success", record
    assert record["Settings"]["Project"] == "BATCH-P"
    assert record["Results"][0]["Resource"] == direct["Resource"]


@pytest.mark.parametrize("project", ["x" * 65, "A\nB", 7])
def test_a_bad_project_is_a_400_naming_it(orthanc, project: object) -> None:
    study = orthanc.upload_study(make_study(Patient(name="Scope^Bad", id="PID-SCOPE-3"), 1, 1))
    response = orthanc.post(f"/anonymizer/studies/{study}", {"Project": project})
    assert response.status_code == 400
    assert "Project" in response.text


def test_on_ingest_copies_are_keyed_by_the_configured_project(server_factory) -> None:
    from ingest_support import auto_overrides
    from orthanc_server import SECRET

    from orthanc_anonymizer.deid.uids import KeyedHasher

    server = server_factory("auto-project", overrides=auto_overrides(Project="AUTO-PROJECT")).start()
    files = make_study(Patient(name="Scope^Ingested", id="PID-SCOPE-4"), 1, 2)
    for data in files:
        server.upload(data)
    original_uid = str(read(files[0]).StudyInstanceUID)
    expected = KeyedHasher(SECRET.encode()).scoped("AUTO-PROJECT").uid(original_uid)
    unscoped = KeyedHasher(SECRET.encode()).uid(original_uid)
    deadline = time.monotonic() + 90
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(records) < 2:
        records = [record for record in server.json("/anonymizer/audit") if record.get("User") == "auto"]
        time.sleep(0.2)
    assert len(records) == 2, records
    assert all(record["Settings"]["Project"] == "AUTO-PROJECT" for record in records)  # type: ignore[index]
    for copy in {record["Result"] for record in records}:
        copied = read(server.get(f"/instances/{copy}/file").content)
        assert copied.StudyInstanceUID == expected != unscoped


def test_a_bad_auto_anonymize_project_stops_start_up_naming_it(server_factory) -> None:
    from ingest_support import auto_overrides

    server = server_factory("auto-bad-project", overrides=auto_overrides(Project="P" * 65))
    assert server.launch().wait(60) != 0
    assert "Anonymizer.AutoAnonymize.Project" in server.log_text()
