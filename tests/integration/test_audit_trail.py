"""The audit trail through REST: paging with since/limit, and the hash chain found broken when a record is edited."""

from __future__ import annotations

import pytest
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def test_audit_pages_newest_last_and_detects_tampering(orthanc) -> None:
    study = orthanc.upload_study(make_study(Patient(name="Audited^Cassiopeia", id="PID-AUDIT"), 1, 1))
    first = orthanc.anonymize("studies", study)["Audit"]
    second = orthanc.anonymize("studies", study, {"PatientID": "AUDIT-2"})["Audit"]
    assert second == first + 1

    newest = orthanc.json("/anonymizer/audit?limit=2")
    assert [record["Sequence"] for record in newest] == [first, second]
    assert [record["Sequence"] for record in orthanc.json(f"/anonymizer/audit?since={first}")] == [second]
    assert [r["Sequence"] for r in orthanc.json(f"/anonymizer/audit?since={first - 1}&limit=1")] == [first]
    for record in newest:
        assert {"Time", "Hash", "PreviousHash", "User", "Source", "Result", "Settings", "Counts"} <= set(record)
    assert orthanc.json("/anonymizer/audit/verify")["Valid"] is True

    # Someone edits a record (same length, so only the hash can tell): the chain breaks at that record.
    path = orthanc.state / "audit.jsonl"
    original = path.read_bytes()
    lines = original.splitlines(keepends=True)
    edited = lines[first - 1].replace(b'"User":"anonymous"', b'"User":"somebodyx"')
    assert edited != lines[first - 1]
    lines[first - 1] = edited
    try:
        path.write_bytes(b"".join(lines))
        verdict = orthanc.json("/anonymizer/audit/verify")
        assert verdict["Valid"] is False
        assert verdict["BrokenAt"] == first
    finally:
        path.write_bytes(original)
    assert orthanc.json("/anonymizer/audit/verify")["Valid"] is True
