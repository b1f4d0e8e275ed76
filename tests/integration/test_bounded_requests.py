"""What one request may cost, on a real Orthanc with the shipped defaults (Anonymizer.MaximumRequestBytes 1 MiB,
MaximumRules 1000, MaximumBatchResources 10000): over a limit, 413 or 400 naming it before any work starts; chosen
PatientName/PatientID within PN/LO; an audit record of a request with many rules stays small (count and digest)."""

from __future__ import annotations

import hashlib
import json
from io import BytesIO

import pytest
from pydicom import dcmread
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def many_rules(count: int) -> list[dict[str, str]]:
    """``count`` distinct rules that remove private attributes (which the basic profile removes anyway)."""
    return [{"Tag": f"{0x0029 + 2 * (n // 0xF000):04X},{0x1000 + n % 0xF000:04X}", "Action": "X"} for n in range(count)]


@pytest.fixture(scope="module")
def study(orthanc) -> str:
    return orthanc.upload_study(make_study(Patient(name="Bounded^Beatrix", id="PID-LIMITS"), 1, 2))


def test_a_body_over_a_mebibyte_is_413_naming_the_limit(orthanc, study) -> None:
    body = json.dumps({"PatientID": "X", "Padding": "p" * (1 << 20)})
    for path in (f"/anonymizer/studies/{study}", "/anonymizer/batch"):
        response = orthanc.post(path, body, headers={"Content-Type": "application/json"})
        assert response.status_code == 413, (path, response.status_code, response.text)
        assert "Anonymizer.MaximumRequestBytes (1048576)" in response.json()["Message"]


def test_too_many_rules_or_resources_are_400_naming_the_limit(orthanc, study) -> None:
    before = len(orthanc.json("/anonymizer/audit"))
    response = orthanc.post(f"/anonymizer/studies/{study}", {"DryRun": True, "Rules": many_rules(1001)})
    assert response.status_code == 400
    assert response.json()["Message"] == "Rules: 1001 rules, more than Anonymizer.MaximumRules (1000)"
    batch = orthanc.post("/anonymizer/batch", {"Level": "Study", "Resources": [f"{n:040d}" for n in range(10001)]})
    assert batch.status_code == 400
    assert batch.json()["Message"] == "Resources: 10001 IDs, more than Anonymizer.MaximumBatchResources (10000)"
    assert len(orthanc.json("/anonymizer/audit")) == before  # refused before any job: nothing to audit


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"PatientName": "Doe\u0000John"}, "PatientName: a control character (U+0000)"),
        ({"PatientName": "N" * 300}, "PatientName: component group 1 has 300 characters, at most 64"),
        ({"PatientName": "Doe^John\nX"}, "PatientName: a control character (U+000A)"),
        ({"PatientID": "I" * 65}, "PatientID: 65 characters, at most 64"),
        ({"PatientID": "A\\B"}, "PatientID: a backslash"),
    ],
)
def test_a_chosen_value_outside_its_vr_is_400_naming_it(orthanc, study, body, named) -> None:
    for path, extra in (
        (f"/anonymizer/studies/{study}", {}),
        ("/anonymizer/batch", {"Level": "Study", "Resources": [study]}),
    ):
        response = orthanc.post(path, {**body, **extra})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["Message"].startswith(named)
        assert next(iter(body.values())) not in response.text


def test_an_audit_record_of_many_rules_is_small_and_holds_their_digest_and_count(orthanc, study) -> None:
    rules = many_rules(1000)  # at the limit: accepted
    answer = orthanc.anonymize("studies", study, {"Rules": rules, "PatientName": "Subject^Copy"})
    expected = "sha256:" + hashlib.sha256("\n".join(f"{r['Tag']};X" for r in rules).encode()).hexdigest()
    record = next(r for r in orthanc.json("/anonymizer/audit") if r.get("Sequence") == answer["Audit"])
    assert record["Settings"]["RuleCount"] == 1000
    assert record["Settings"]["RulesDigest"] == expected
    line = next(
        line
        for line in (orthanc.state / "audit.jsonl").read_bytes().splitlines()
        if json.loads(line).get("Sequence") == answer["Audit"]
    )
    assert len(line) < 4096, len(line)  # 1000 rules listed would be ~15 kB; 200,000 were 2.8 MB
    assert b"0029,1000" not in line
    # The copy's AnonymizationProfile metadata says the same, as small.
    profile = orthanc.get(f"/studies/{answer['Resource']}/metadata/AnonymizationProfile").text
    assert json.loads(profile)["RulesDigest"] == expected and len(profile) < 1024


def test_a_chosen_name_an_instance_cannot_hold_fails_it_named_instead_of_being_mangled(orthanc) -> None:
    files = []
    for data in make_study(Patient(name="Charset^Cordula", id="PID-CHARSET"), 1, 2):
        dataset = dcmread(BytesIO(data))
        if files:  # the second instance declares UTF-8; the first keeps the default repertoire (ASCII)
            dataset.SpecificCharacterSet = "ISO_IR 192"
        buffer = BytesIO()
        dataset.save_as(buffer)
        files.append(buffer.getvalue())
    study = orthanc.upload_study(files)
    answer = orthanc.anonymize("studies", study, {"PatientName": "Müller^Jürgen"})
    assert answer["Instances"] == 1 and answer["Complete"] is False
    (failed,) = answer["Failed"]
    assert "0010,0010 PatientName: " in failed["Reason"] and "Specific Character Set" in failed["Reason"]
    assert "Müller" not in json.dumps(answer, ensure_ascii=False)
    (copy,) = orthanc.json(f"/studies/{answer['Resource']}/instances")
    stored = dcmread(BytesIO(orthanc.get(f"/instances/{copy['ID']}/file").content))
    assert str(stored.PatientName) == "Müller^Jürgen" and stored.SpecificCharacterSet == "ISO_IR 192"
