"""Weakening a profile is for the users the configuration names (issue 15, item 3): with ``weaken`` in
``Anonymizer.Authorization.RestrictedRoutes``, a rule or option in a request that keeps or cleans what the named
profile removes is refused (403 naming the rule, a "denied" audit record); the site's own profiles, and rules that
remove or empty, stay open to everyone. An administrator's weakening request goes through, and its output and
audit record say what was weakened (issue 14, item 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from checks import instance_files, read
from orthanc_server import OrthancServer
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration
USERS = {"admin": "admin-pass-1", "operator": "operator-pass-2"}
NAME, PATIENT_ID = "Weakling^Theodora", "PID-WEAK-41"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    folder = tmp_path_factory.mktemp("weaken")
    profiles = folder / "profiles"
    profiles.mkdir()
    (profiles / "site-keeps-age.csv").write_text("0010,1010;K\n")
    (profiles / "site-keeps-id.csv").write_text("0010,0020;K\n")
    overrides = {
        "AuthenticationEnabled": True,
        "RegisteredUsers": USERS,
        "Anonymizer": {
            "ProfilesDirectory": str(profiles),
            "Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["weaken"]},
        },
    }
    server = OrthancServer(folder, overrides, auth=("admin", USERS["admin"]))
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def study(server: OrthancServer) -> str:
    return server.upload_study(make_study(Patient(name=NAME, id=PATIENT_ID), 1, 2))


def call(server: OrthancServer, user: str, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(method, server.url + path, json=body, auth=(user, USERS[user]), timeout=120)


def keep(tag: str) -> list[dict[str, str]]:
    return [{"Tag": tag, "Action": "K"}]


def test_an_operator_cannot_weaken_the_profile_and_is_told_which_rule(server: OrthancServer, study: str) -> None:
    before = len(server.json("/anonymizer/audit"))
    refused = [
        (f"/anonymizer/studies/{study}", {"Rules": keep("0010,0010")}, "0010,0010;K"),
        (f"/anonymizer/studies/{study}", {"Rules": keep("0010,xxxx")}, "0010,xxxx;K"),
        (f"/anonymizer/studies/{study}", {"Rules": keep("0010,0020"), "DryRun": True}, "0010,0020;K"),
        (f"/anonymizer/studies/{study}", {"Options": ["RetainSafePrivate"]}, "RetainSafePrivate"),
        (f"/anonymizer/studies/{study}", {"Profile": "site-keeps-age", "Rules": keep("0010,0010")}, "0010,0010;K"),
        ("/anonymizer/batch", {"Level": "Study", "Resources": [study], "Rules": keep("0010,0020")}, "0010,0020;K"),
    ]
    for path, body, rule in refused:
        response = call(server, "operator", "POST", path, body)
        assert response.status_code == 403, (body, response.status_code, response.text)
        message = response.json()["Message"]
        assert message.startswith(f"weaken: {rule} ") and "AdminUsers" in message
        assert "Weakling" not in response.text and PATIENT_ID not in response.text
    records = server.json("/anonymizer/audit")[before:]
    denied = [record for record in records if record["Event"] == "denied"]
    assert [(record["User"], record["Route"], record["Rules"]) for record in denied] == [
        ("operator", "weaken", [rule]) for *_, rule in refused
    ]
    assert len(denied) == len(records)  # nothing was anonymized
    assert "Weakling" not in json.dumps(records) and PATIENT_ID not in json.dumps(records)


def test_an_operator_may_remove_more_and_use_the_sites_own_profiles(server: OrthancServer, study: str) -> None:
    emptied = call(
        server, "operator", "POST", f"/anonymizer/studies/{study}", {"Rules": [{"Tag": "0010,0010", "Action": "Z"}]}
    )
    assert emptied.status_code == 200, emptied.text
    copy = next(iter(instance_files(server, "studies", emptied.json()["Resource"]).values()))
    assert str(read(copy).PatientName) == ""  # the rule, not the pseudonym
    assert read(copy).PatientIdentityRemoved == "YES"
    # A named profile that keeps Patient ID is the site's choice: allowed, and the output says so.
    site = call(server, "operator", "POST", f"/anonymizer/studies/{study}", {"Profile": "site-keeps-id"})
    assert site.status_code == 200, site.text
    output = read(next(iter(instance_files(server, "studies", site.json()["Resource"]).values())))
    assert output.PatientID == PATIENT_ID
    assert output.PatientIdentityRemoved == "NO"
    assert "weakened by: 0010,0020;K" in list(output.DeidentificationMethod)


def test_an_administrator_may_weaken_and_the_output_and_audit_say_so(server: OrthancServer, study: str) -> None:
    answer = server.anonymize("studies", study, {"Rules": keep("0010,0010") + keep("0008,0080")})
    output = read(next(iter(instance_files(server, "studies", answer["Resource"]).values())))
    assert str(output.PatientName) == NAME
    assert output.PatientIdentityRemoved == "NO"
    assert "weakened by: 0010,0010;K 0008,0080;K" in list(output.DeidentificationMethod)
    records = [record for record in server.json("/anonymizer/audit") if record.get("Result") == answer["Resource"]]
    assert records, "no audit record for the copy"
    settings = records[-1]["Settings"]
    assert settings["Weakened"] == ["0010,0010;K", "0008,0080;K"]
    assert settings["PatientIdentityRemoved"] is False
    assert "Weakling" not in json.dumps(records)


def test_weaken_is_a_known_route_name(tmp_path: Path) -> None:
    overrides = {
        "AuthenticationEnabled": True,
        "RegisteredUsers": USERS,
        "Anonymizer": {"Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["weakening"]}},
    }
    server = OrthancServer(tmp_path / "unknown-name", overrides)
    try:
        assert server.launch().wait(60) != 0
        assert "weaken" in server.log_text() and "weakening" in server.log_text()
    finally:
        server.stop()


def test_copies_of_a_weakening_site_profile_on_ingest_are_not_copied_again(server_factory, tmp_path: Path) -> None:
    """AutoAnonymize with a site profile that keeps Patient ID: its copies say Patient Identity Removed NO, and are
    still the plugin's own output, never anonymized again (a copy of a copy would follow, and another...)."""
    from ingest_support import auto_overrides, send, settle, wait_for_instances

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "site-keeps-id.csv").write_text("0010,0020;K\n")
    overrides = auto_overrides(StableAge=1, Profile="site-keeps-id")
    overrides["Anonymizer"]["ProfilesDirectory"] = str(profiles)
    server = server_factory("ingest-weakened", overrides=overrides).start()
    patients = [Patient(name=f"Keptid^Patient{n}", id=f"PID-KEPT-{n}") for n in range(2)]
    files = [data for patient in patients for data in make_study(patient, 2, 5)]
    send(server, files, tmp_path / "burst")
    wait_for_instances(server, 2 * len(files))
    # Nothing more arrives: no copy of a copy (the copies keep the patients' IDs, so count by links).
    assert settle(server, 5.0) == 2 * len(files)
    studies = server.json("/studies")
    assert len(studies) == 2 * len(patients)
    links = {study: server.json(f"/anonymizer/studies/{study}/links") for study in studies}
    originals = [study for study, link in links.items() if link["Source"] is None]
    assert len(originals) == len(patients)
    for original in originals:
        (copy_study,) = links[original]["Copies"]
        assert links[copy_study]["Copies"] == []
        instance = server.json(f"/studies/{copy_study}/instances")[0]["ID"]
        tags = server.json(f"/instances/{instance}/simplified-tags")
        assert tags["PatientIdentityRemoved"] == "NO"
        assert tags["PatientID"].startswith("PID-KEPT-")
        assert "weakened by: 0010,0020;K" in tags["DeidentificationMethod"]
