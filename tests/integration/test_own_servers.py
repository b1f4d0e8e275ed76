"""Scenarios that need an Orthanc of their own: authentication, a restart, few HTTP threads, wrong settings."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def test_orthanc_authentication_guards_the_routes(server_factory) -> None:
    users = {"alice": "wonderland-7", "bob": "builder-3"}
    server = server_factory(
        "auth",
        overrides={"AuthenticationEnabled": True, "RegisteredUsers": users},
        auth=("alice", users["alice"]),
    ).start()
    study = server.upload_study(make_study(Patient(name="Guarded^Seraphina", id="PID-AUTH"), 1, 2))
    anonymous = requests.Session()
    for method, path in [
        ("GET", "/anonymizer/profiles"),
        ("POST", f"/anonymizer/studies/{study}"),
        ("POST", "/anonymizer/batch"),
        ("GET", f"/anonymizer/studies/{study}/links"),
        ("GET", "/anonymizer/audit"),
        ("GET", "/anonymizer/audit/verify"),
    ]:
        assert anonymous.request(method, server.url + path, json={}, timeout=30).status_code == 401, path
    wrong = requests.post(server.url + f"/anonymizer/studies/{study}", json={}, auth=("alice", "nope"), timeout=30)
    assert wrong.status_code == 401
    assert server.json("/statistics")["CountInstances"] == 2

    # With credentials it works, the plugin's own loopback calls included; the audit names the user.
    answer = server.anonymize("studies", study)
    assert answer["Instances"] == 2 and answer["Failed"] == []
    bob = requests.post(
        server.url + f"/anonymizer/studies/{study}", json={"DryRun": True}, auth=("bob", users["bob"]), timeout=60
    )
    assert bob.status_code == 200
    users_in_audit = [record["User"] for record in server.json("/anonymizer/audit")]
    assert users_in_audit == ["alice", "bob"]


def test_jobs_links_and_audit_survive_a_restart(server_factory) -> None:
    server = server_factory("restart").start()
    study = server.upload_study(make_study(Patient(name="Restart^Gwendolyn", id="PID-RESTART"), 1, 2))
    job = server.anonymize("studies", study, {"Asynchronous": True})["Job"]
    record = server.wait_job(job)
    copy = record["Results"][0]["Resource"]
    server.stop()

    server.start()
    assert server.json(f"/anonymizer/jobs/{job}") == record
    assert server.json(f"/anonymizer/studies/{study}/links")["Copies"] == [copy]
    assert server.json(f"/anonymizer/studies/{copy}/links")["Source"] == study
    # The audit chain goes on across the restart.
    second = server.anonymize("studies", study, {"PatientID": "AFTER-RESTART"})
    assert second["Audit"] == 2
    assert server.json("/anonymizer/audit/verify") == {"Valid": True, "Records": 2, "BrokenAt": None}
    # The state files are where the documentation says.
    assert (server.state / "audit.jsonl").is_file()
    assert (server.state / "jobs" / f"{job}.json").is_file()


def test_more_waiting_requests_than_threads_are_refused_not_deadlocked(server_factory) -> None:
    server = server_factory("threads", overrides={"HttpThreadsCount": 20}).start()
    studies = [
        server.upload_study(make_study(Patient(name=f"Crowd^Member{n}", id=f"PID-CROWD-{n}"), 1, 2)) for n in range(24)
    ]

    def anonymize(study: str) -> int:
        return requests.post(server.url + f"/anonymizer/studies/{study}", json={}, timeout=120).status_code

    with ThreadPoolExecutor(len(studies)) as executor:
        statuses = list(executor.map(anonymize, studies, timeout=180))
    assert set(statuses) <= {200, 503}
    # 20 threads - 3 x 2 for the job runners and storers - 2 for the worker processes (they download the
    # originals) - 4 checks - 4 spare
    assert statuses.count(200) >= 4
    # Orthanc answers afterwards, and a refused request succeeds when retried.
    assert server.get("/system", timeout=10).status_code == 200
    for study, status in zip(studies, statuses, strict=True):
        if status == 503:
            assert anonymize(study) == 200
            break


@pytest.mark.parametrize(
    ("overrides", "secret", "named"),
    [
        ({"Anonymizer": {"Workers": 0}}, "s", "Anonymizer.Workers"),
        ({"Anonymizer": {"Wrokers": 2}}, "s", "Anonymizer.Wrokers"),
        ({"Anonymizer": {"DefaultProfile": "no-such-profile"}}, "s", "Anonymizer.DefaultProfile"),
        ({"Anonymizer": {"DefaultOptions": ["RetainNothing"]}}, "s", "Anonymizer.DefaultOptions"),
        ({"Anonymizer": {"AllowDevelopmentSecret": False}}, None, "Anonymizer.Secret"),
        ({"UserMetadata": {}}, "s", "AnonymizedFromResource"),
    ],
)
def test_wrong_setting_stops_start_up_naming_it(server_factory, overrides, secret, named) -> None:
    server = server_factory("wrong", overrides=overrides, secret=secret)
    process = server.launch()
    assert process.wait(60) != 0
    assert named in server.log_text()


def test_development_secret_only_when_allowed_and_then_announced(server_factory) -> None:
    server = server_factory("devsecret", secret=None).start()
    assert "development secret" in server.log_text()


def test_links_are_rewritten_when_orthanc_checks_revisions(server_factory) -> None:
    server = server_factory("revisions", overrides={"CheckRevisions": True}).start()
    study = server.upload_study(make_study(Patient(name="Revision^Archibald", id="PID-REV"), 1, 2))
    first = server.anonymize("studies", study, {"Options": ["RetainPatientChars"]})
    # Same patient pseudonym, so the same copy study: its metadata exists and must be replaced at its revision.
    second = server.anonymize("studies", study)
    assert second["Resource"] == first["Resource"]
    assert second["Failed"] == [] and second["Instances"] == 2
    profile = server.get(f"/studies/{second['Resource']}/metadata/AnonymizationProfile").json()
    assert profile["Options"] == []


def test_same_secret_gives_the_same_copy_on_another_orthanc(orthanc, server_factory) -> None:
    from checks import instance_files, read

    files = make_study(Patient(name="Replica^Ottoline", id="PID-REPLICA"), 1, 2)
    other = server_factory("replica").start()  # same ANONYMIZER_SECRET as the session's Orthanc
    stranger = server_factory("stranger", secret="another-site-secret").start()
    copies = []
    for server in (orthanc, other, stranger):
        answer = server.anonymize("studies", server.upload_study(files))
        datasets = [read(data) for data in instance_files(server, "studies", answer["Resource"]).values()]
        copies.append(sorted((ds.StudyInstanceUID, ds.SOPInstanceUID, str(ds.PatientName)) for ds in datasets))
    assert copies[0] == copies[1]
    assert not set(copies[0]) & set(copies[2])


def test_copy_orthanc_did_not_store_is_reported_failed(server_factory) -> None:
    from checks import instance_files, read

    server = server_factory("no-overwrite", overrides={"OverwriteInstances": False}).start()
    study = server.upload_study(make_study(Patient(name="Overwrite^Leontyne", id="PID-OVERWRITE"), 1, 2))
    first = server.anonymize("studies", study, {"PatientName": "FIRST^COPY"})
    assert first["Failed"] == []
    # Same UIDs and patient (the same chosen identity and project), another option, so other bytes: Orthanc keeps
    # the first copy and says AlreadyStored. (Another chosen identity or project would be another study.)
    second = server.anonymize("studies", study, {"PatientName": "FIRST^COPY", "Options": ["RetainDeviceIdent"]})
    assert second["Instances"] == 0 and len(second["Failed"]) == 2
    assert all("kept other bytes" in failed["Reason"] for failed in second["Failed"])
    kept = instance_files(server, "studies", first["Resource"])
    assert len(kept) == 2
    assert all("RetainDeviceIdent" not in read(data).DeidentificationMethod for data in kept.values())


def test_batch_killed_with_orthanc_is_marked_interrupted_and_the_originals_kept(server_factory) -> None:
    from checks import instance_files

    server = server_factory("killed", overrides={"Anonymizer": {"Workers": 1}}).start()
    studies = [
        server.upload_study(make_study(Patient(name=f"Killed^Barnabas{n}", id=f"PID-KILLED-{n}"), 2, 20))
        for n in range(3)
    ]
    originals = {study: instance_files(server, "studies", study) for study in studies}
    job = server.post("/anonymizer/batch", {"Level": "Study", "Resources": studies, "InPlace": True}).json()["Job"]
    deadline = time.monotonic() + 60
    while server.json(f"/anonymizer/jobs/{job}")["Progress"] < 40 and time.monotonic() < deadline:
        time.sleep(0.05)  # killed in the middle of the second study
    assert server.process is not None
    workers = [
        int(pid)
        for pid in Path(f"/proc/{server.process.pid}/task").glob("*/children")
        for pid in pid.read_text().split()
    ]
    assert workers, "the engine runs in worker processes"
    server.process.kill()  # no chance to clean up: a power cut
    server.process.wait(30)
    server.process = None
    # The worker processes do not outlive their Orthanc.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]

    server.start()
    record = server.json(f"/anonymizer/jobs/{job}")
    assert record["State"] == "Failure"
    assert any(error.startswith("interrupted") for error in record["Errors"])
    # InPlace deleted an original only once its copy was complete; every other original is byte-identical.
    deleted = {result["Source"]: result["Resource"] for result in record["Results"] if result.get("Deleted")}
    for study in studies:
        if study in deleted:
            assert server.get(f"/studies/{study}").status_code == 404
            assert len(server.json(f"/studies/{deleted[study]}/instances")) == len(originals[study])
        else:
            assert instance_files(server, "studies", study) == originals[study]
    # What the record says is complete is complete; no result claims more than the copy holds.
    for result in record["Results"]:
        copy_count = len(server.json(f"/studies/{result['Resource']}/instances")) if result["Resource"] else 0
        assert copy_count >= result["Instances"]
        if result.get("Complete"):
            assert copy_count == len(originals[result["Source"]])
    assert len(deleted) < len(studies)  # the kill did cut the batch short
    concluded = {result["Source"] for result in record["Results"]}
    for study in set(studies) - concluded:
        assert f"Study {study}: not finished; its copy, if any, is partial" in record["Errors"]
    assert server.json("/anonymizer/audit/verify")["Valid"] is True

    # The rest again (keeping the originals now): every copy completed in place, none doubled.
    remaining = [study for study in studies if study not in deleted]
    again = server.post("/anonymizer/batch", {"Level": "Study", "Resources": remaining}).json()["Job"]
    finished = server.wait_job(again)
    assert finished["State"] == "Success", finished["Errors"]
    for result in finished["Results"]:
        assert result["Complete"] is True
        assert len(server.json(f"/studies/{result['Resource']}/instances")) == len(originals[result["Source"]])
        assert server.json(f"/anonymizer/studies/{result['Source']}/links")["Copies"] == [result["Resource"]]
    copies = sum(len(originals[study]) for study in studies)
    assert server.json("/statistics")["CountInstances"] == copies + sum(len(originals[study]) for study in remaining)
    assert server.json("/anonymizer/audit/verify")["Valid"] is True
