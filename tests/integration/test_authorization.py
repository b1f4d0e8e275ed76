"""Anonymizer.Authorization: links, dry runs with values and the audit trail for administrators only, while an
operator still anonymizes. Orthanc's own authentication names the user (two RegisteredUsers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from orthanc_server import OrthancServer
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration
USERS = {"admin": "admin-pass-1", "operator": "operator-pass-2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    overrides = {
        "AuthenticationEnabled": True,
        "RegisteredUsers": USERS,
        "Anonymizer": {
            "Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["links", "audit", "dry-run-values"]}
        },
    }
    server = OrthancServer(tmp_path_factory.mktemp("authorization"), overrides, auth=("admin", USERS["admin"]))
    yield server.start()
    server.stop()


def as_user(server: OrthancServer, user: str) -> requests.Session:
    session = requests.Session()
    session.auth = (user, USERS[user])
    return session


def test_operator_anonymizes_but_cannot_follow_links_read_values_or_the_audit(server) -> None:
    study = server.upload_study(make_study(Patient(name="Restricted^Wilhelmina", id="PID-AUTHZ"), 1, 2))
    operator = as_user(server, "operator")

    def call(method: str, path: str, body: object = None) -> requests.Response:
        return operator.request(method, server.url + path, json=body, timeout=60)

    anonymized = call("POST", f"/anonymizer/studies/{study}", {})
    assert anonymized.status_code == 200, anonymized.text
    copy = anonymized.json()["Resource"]
    assert call("POST", f"/anonymizer/studies/{study}", {"DryRun": True}).status_code == 200
    job = call("POST", "/anonymizer/batch", {"Level": "Study", "Resources": [study], "PatientID": "BATCH"})
    assert job.status_code == 200
    assert server.wait_job(job.json()["Job"])["State"] == "Success"
    assert call("GET", f"/anonymizer/jobs/{job.json()['Job']}").status_code == 200
    assert call("GET", "/anonymizer/profiles").status_code == 200

    refused = [
        ("POST", f"/anonymizer/studies/{study}", {"DryRun": True, "IncludeValues": True}, "dry-run-values"),
        (
            "POST",
            "/anonymizer/batch",
            {"Level": "Study", "Resources": [study], "DryRun": True, "IncludeValues": True},
            "dry-run-values",
        ),
        ("GET", f"/anonymizer/studies/{copy}/links", None, "links"),
        ("GET", f"/anonymizer/studies/{study}/links", None, "links"),
        ("GET", "/anonymizer/audit", None, "audit"),
        ("GET", "/anonymizer/audit/verify", None, "audit"),
    ]
    for method, path, body, route in refused:
        response = call(method, path, body)
        assert response.status_code == 403, (path, response.status_code, response.text)
        message = response.json()["Message"]
        assert message.startswith(f"{route}:") and "AdminUsers" in message
        assert "Wilhelmina" not in response.text

    # An administrator's dry run with values, run as a job: its record is the administrator's to read.
    values_job = server.anonymize("studies", study, {"DryRun": True, "IncludeValues": True, "Asynchronous": True})[
        "Job"
    ]
    record = server.wait_job(values_job)
    assert "Restricted^Wilhelmina" in str(record["Results"])
    assert call("GET", f"/anonymizer/jobs/{values_job}").status_code == 403  # another user's job: links

    # The administrator may do all of it; the audit names who did what.
    assert server.json(f"/anonymizer/studies/{copy}/links")["Source"] == study
    values = server.anonymize("studies", study, {"DryRun": True, "IncludeValues": True})
    assert any(change.get("Original") == "Restricted^Wilhelmina" for change in values["Changes"])
    assert server.json("/anonymizer/audit/verify")["Valid"] is True
    records = server.json("/anonymizer/audit")
    users = [record["User"] for record in records if record["Event"] != "denied"]
    assert users == ["operator", "operator", "operator", "admin", "admin"]
    # Each refusal is audited too: who, which route, which request.
    denied = [(record["User"], record["Route"]) for record in records if record["Event"] == "denied"]
    assert denied == [("operator", route) for *_, route in refused] + [("operator", "links")]
    assert all(
        record["Request"].startswith(("GET /anonymizer/", "POST /anonymizer/"))
        for record in records
        if record["Event"] == "denied"
    )
    # Wrong password or no credentials: Orthanc's own 401 comes first.
    assert requests.get(server.url + "/anonymizer/audit", auth=("admin", "wrong"), timeout=30).status_code == 401
    assert requests.get(server.url + "/anonymizer/audit", timeout=30).status_code == 401


def test_restricted_routes_without_orthanc_authentication_stop_start_up(tmp_path) -> None:
    # Without authentication nobody checks the user name in the Basic header: anyone could claim "admin".
    overrides = {
        "AuthenticationEnabled": False,
        "Anonymizer": {"Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["links"]}},
    }
    server = OrthancServer(tmp_path / "no-auth", overrides)
    try:
        assert server.launch().wait(60) != 0
        assert "Anonymizer.Authorization" in server.log_text() and "AuthenticationEnabled" in server.log_text()
    finally:
        server.stop()


def test_a_user_who_may_not_follow_links_reads_only_the_jobs_they_started(server) -> None:
    study = server.upload_study(make_study(Patient(name="Jobholder^Ottilie", id="PID-JOBS"), 1, 2))
    other = server.upload_study(make_study(Patient(name="Otherjob^Konstanze", id="PID-OTHER"), 1, 1))
    operator = as_user(server, "operator")

    def read(job: str, session: requests.Session = operator) -> requests.Response:
        return session.get(f"{server.url}/anonymizer/jobs/{job}", timeout=60)

    # Their own job: the copy of the study they named, as a synchronous answer would say.
    mine = operator.post(f"{server.url}/anonymizer/studies/{study}", json={"Asynchronous": True}, timeout=60)
    record = server.wait_job(mine.json()["Job"])
    assert record["User"] == "operator" and record["State"] == "Success"
    own = read(mine.json()["Job"]).json()
    assert own["Results"][0]["Source"] == study and own["Results"][0]["Resource"]

    # Another user's job, anonymization or batch: refused, naming the links rule, with no resource in the answer.
    theirs = [
        server.anonymize("studies", other, {"Asynchronous": True})["Job"],
        server.post("/anonymizer/batch", {"Level": "Study", "Resources": [other]}).json()["Job"],
    ]
    copies = []
    for job in theirs:
        copies.append(server.wait_job(job)["Results"][0]["Resource"])
        refused = read(job)
        assert refused.status_code == 403
        assert refused.json()["Message"].startswith(f"links: job {job} was started by another user")
        assert "AdminUsers" in refused.json()["Message"]
        assert other not in refused.text and copies[-1] not in refused.text and "Otherjob" not in refused.text
    # The administrator reads every job; each refusal is audited.
    assert read(mine.json()["Job"], server.session).json()["Results"][0]["Source"] == study
    denied = [record for record in server.json("/anonymizer/audit") if record["Event"] == "denied"][-2:]
    assert [(record["User"], record["Route"], record["Request"]) for record in denied] == [
        ("operator", "links", f"GET /anonymizer/jobs/{job}") for job in theirs
    ]


def test_the_audit_trail_follows_the_links_rule(tmp_path) -> None:
    # Only "links" restricted: the audit route is open, but its records pair originals with copies.
    overrides = {
        "AuthenticationEnabled": True,
        "RegisteredUsers": USERS,
        "Anonymizer": {"Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["links"]}},
    }
    server = OrthancServer(tmp_path / "links-only", overrides, auth=("admin", USERS["admin"]))
    try:
        server.start()
        study = server.upload_study(make_study(Patient(name="Audited^Leopoldine", id="PID-AUDITLINK"), 1, 1))
        copy = server.anonymize("studies", study)["Resource"]
        operator = as_user(server, "operator")
        refused = operator.get(f"{server.url}/anonymizer/audit", timeout=60)
        assert refused.status_code == 403 and refused.json()["Message"].startswith("links:")
        assert study not in refused.text and copy not in refused.text
        assert operator.get(f"{server.url}/anonymizer/audit/verify", timeout=60).json()["Valid"] is True
        records = server.json("/anonymizer/audit")
        assert any(record.get("Source") == study and record.get("Result") == copy for record in records)
    finally:
        server.stop()
