"""DryRun: the changes tag by tag, values only when asked, nothing stored."""

from __future__ import annotations

import pytest
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def test_dry_run_lists_changes_and_stores_nothing(orthanc) -> None:
    patient = Patient(name="Dryrun^Philomena", id="PID-DRY-1")
    study = orthanc.upload_study(make_study(patient, series=1, per_series=2))
    before = orthanc.json("/statistics")["CountInstances"]
    audit_before = len(orthanc.json("/anonymizer/audit"))

    answer = orthanc.anonymize("studies", study, {"DryRun": True})

    assert orthanc.json("/statistics")["CountInstances"] == before
    assert answer["DryRun"] is True
    assert answer["Instances"] == 2
    by_keyword = {}
    for change in answer["Changes"]:
        by_keyword.setdefault(change["Keyword"], []).append(change)
        assert "Original" not in change and "New" not in change
    assert {change["Instance"] for change in answer["Changes"]} == {
        item["ID"] for item in orthanc.json(f"/studies/{study}/instances")
    }
    patient_name = by_keyword["PatientName"][0]
    assert patient_name["Tag"] == "0010,0010"
    assert patient_name["Changed"] is True
    assert any("[0]/" in change["Path"] for change in answer["Changes"])  # inside sequences too
    assert "Philomena" not in str(answer)
    assert orthanc.json(f"/anonymizer/studies/{study}/links")["Copies"] == []
    # The dry run is audited (who looked), without values.
    records = orthanc.json("/anonymizer/audit")
    assert len(records) == audit_before + 1
    assert records[-1]["Event"] == "dry-run"


def test_dry_run_shows_values_only_when_asked(orthanc) -> None:
    study = orthanc.upload_study(make_study(Patient(name="Values^Cornelius", id="PID-DRY-2"), 1, 1))
    answer = orthanc.anonymize("studies", study, {"DryRun": True, "IncludeValues": True})
    name_changes = [change for change in answer["Changes"] if change["Keyword"] == "PatientName"]
    assert name_changes[0]["Original"] == "Values^Cornelius"
    assert name_changes[-1]["New"] not in ("", "Values^Cornelius")
    assert "Cornelius" not in orthanc.log_text()


def test_include_values_without_dry_run_is_refused(orthanc) -> None:
    study = orthanc.upload_study(make_study(Patient(id="PID-DRY-3"), 1, 1))
    answer = orthanc.anonymize("studies", study, {"IncludeValues": True}, status=400)
    assert "IncludeValues" in answer["Message"]
