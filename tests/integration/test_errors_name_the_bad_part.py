"""Bad requests are 400 with a message naming the bad part; unknown resources are 404; nothing is stored."""

from __future__ import annotations

import pytest
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration
UNKNOWN = "00000000-00000000-00000000-00000000-00000000"


@pytest.fixture(scope="module")
def study(orthanc) -> str:
    return orthanc.upload_study(make_study(Patient(name="Errors^Ignatius", id="PID-ERRORS"), 1, 1))


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"Profile": "no-such-profile"}, "no-such-profile"),
        ({"Profile": "../../etc/passwd"}, "../../etc/passwd"),
        ({"Options": ["RetainEverything"]}, "RetainEverything"),
        ({"Options": ["RetainLongFullDates", "RetainLongModifDates"]}, "RetainLongModifDates"),
        ({"Rules": [{"Tag": "0010,0010", "Action": "Q"}]}, "'Q'"),
        ({"Rules": [{"Tag": "00100010x", "Action": "X"}]}, "00100010x"),
        ({"Rules": "0010,0010"}, "Rules"),
        ({"Colour": "blue"}, "Colour"),
        ({"InPlace": "yes"}, "InPlace"),
        ({"PatientName": 42}, "PatientName"),
        ("{not json", "JSON"),
        ([1, 2], "object"),
    ],
)
def test_bad_body_is_400_naming_the_bad_part(orthanc, study, body, named) -> None:
    before = orthanc.json("/statistics")["CountInstances"]
    response = orthanc.post(f"/anonymizer/studies/{study}", body if not isinstance(body, str) else body.encode())
    assert response.status_code == 400, response.text
    assert named in response.json()["Message"]
    assert orthanc.json("/statistics")["CountInstances"] == before


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_unknown_resource_is_404(orthanc, level) -> None:
    assert orthanc.post(f"/anonymizer/{level}/{UNKNOWN}", {}).status_code == 404
    assert orthanc.post(f"/anonymizer/{level}/{UNKNOWN}", {"Asynchronous": True}).status_code == 404
    assert orthanc.get(f"/anonymizer/{level}/{UNKNOWN}/links").status_code == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"Resources": ["x"]}, "Level"),
        ({"Level": "Galaxy", "Resources": ["x"]}, "Level"),
        ({"Level": "Study", "Resources": []}, "Resources"),
        ({"Level": "Study", "Resources": ["a", "a"]}, "Resources"),
        ({"Level": "Study", "Resources": ["a"], "Profile": "nope"}, "nope"),
    ],
)
def test_bad_batch_is_400(orthanc, body, named) -> None:
    response = orthanc.post("/anonymizer/batch", body)
    assert response.status_code == 400
    assert named in response.json()["Message"]


def test_wrong_method_and_bad_query(orthanc, study) -> None:
    assert orthanc.get(f"/anonymizer/studies/{study}").status_code == 405
    assert orthanc.post("/anonymizer/profiles", {}).status_code == 405
    response = orthanc.get("/anonymizer/audit?limit=many")
    assert response.status_code == 400
    assert "limit" in response.json()["Message"]


def test_profiles_route_lists_basic_and_the_shipped_profiles(orthanc) -> None:
    profiles = {profile["Name"]: profile for profile in orthanc.json("/anonymizer/profiles")}
    assert profiles["basic"]["Options"] == []
    assert "Basic" in profiles["basic"]["Description"]
    assert len(profiles) > 1
    for profile in profiles.values():
        assert set(profile) >= {"Name", "Description", "Options"}


def test_named_profile_and_custom_rules_apply(orthanc) -> None:
    from checks import instance_files, read

    study = orthanc.upload_study(make_study(Patient(name="Customrules^Henrietta", id="PID-77810"), 1, 1))
    answer = orthanc.anonymize(
        "studies", study, {"Rules": [{"Tag": "0008,1010", "Action": "K"}, {"Tag": "0008,0070", "Action": "X"}]}
    )
    assert answer["Failed"] == []
    (copy,) = instance_files(orthanc, "studies", answer["Resource"]).values()
    ds = read(copy)
    assert ds.StationName == "CTSTATION07"  # the basic profile removes it; the rule keeps it
    assert "Manufacturer" not in ds
    profile = next(p["Name"] for p in orthanc.json("/anonymizer/profiles") if p["Name"] != "basic")
    answer = orthanc.anonymize("studies", study, {"Profile": profile, "PatientID": "NAMED-PROFILE"})
    assert answer["Failed"] == []
    audit = orthanc.json("/anonymizer/audit")[-1]
    assert audit["Settings"]["Profile"] == profile
