"""Faults under the state folder: a full disk (no cut audit line, no half-written job record, a reason in words)
and a crash (unfinished resources named, a damaged record skipped)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from orthanc_anonymizer import audit as audit_module
from orthanc_anonymizer.audit import AuditLog
from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.server.job_records import JobStore


def test_an_audit_line_the_disk_cut_short_is_taken_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"Event": "anonymize", "Source": "a"})
    before = log.path.read_bytes()
    real_write = os.write

    def half_write(descriptor: int, data: bytes) -> int:
        return real_write(descriptor, data[: len(data) // 2])

    monkeypatch.setattr(audit_module.os, "write", half_write)
    with pytest.raises(OSError, match="No space left"):
        log.append({"Event": "anonymize", "Source": "b"})
    monkeypatch.undo()

    assert log.path.read_bytes() == before
    assert log.append({"Event": "anonymize", "Source": "c"})["Sequence"] == 2
    assert log.verify()["Valid"] is True


def test_a_job_record_the_disk_refuses_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(tmp_path)

    def full(self: Path, text: str, encoding: str | None = None) -> int:
        with self.open("w", encoding=encoding) as file:
            file.write(text[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError):
        store.save({"ID": "8d0c7a52-4c0e-4d57-9d6e-7a5a3c1b2f10", "State": "Running"})
    assert list(tmp_path.iterdir()) == []


def test_disk_errors_are_summarized_by_their_reason_without_the_path() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/srv/Doe^John/record.json")
    assert exception_summary(error) == "OSError: No space left on device"


def test_after_a_crash_unfinished_resources_are_named_and_a_damaged_record_does_not_stop_start_up(
    tmp_path: Path,
) -> None:
    store = JobStore(tmp_path)
    job_id = "8d0c7a52-4c0e-4d57-9d6e-7a5a3c1b2f10"
    store.save(
        {
            "ID": job_id,
            "Level": "Study",
            "State": "Running",
            "Resources": ["a", "b", "c"],
            "Results": [{"Source": "a", "Complete": True}],
            "Errors": [],
        }
    )
    (tmp_path / "0b5cbd0e-8d8b-4a43-9a3f-0b4c1e0d2a11.json").write_text('{"ID": "0b5c', encoding="utf-8")

    assert store.mark_interrupted() == 1
    record = store.load(job_id)
    assert record is not None and record["State"] == "Failure"
    assert record["Errors"][-1].startswith("interrupted")
    assert record["Errors"][:-1] == [
        "Study b: not finished; its copy, if any, is partial",
        "Study c: not finished; its copy, if any, is partial",
    ]


def test_a_batch_of_audit_records_the_disk_cuts_short_is_taken_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"Event": "anonymize", "Source": "a"})
    before = log.path.read_bytes()
    real_write = os.write
    monkeypatch.setattr(audit_module.os, "write", lambda descriptor, data: real_write(descriptor, data[:700]))
    with pytest.raises(OSError, match="No space left"):
        log.append_many([{"Event": "anonymize", "Source": f"b-{n}"} for n in range(10)])
    monkeypatch.undo()
    assert log.path.read_bytes() == before  # not the first records of the batch either
    assert log.append({"Event": "anonymize", "Source": "c"})["Sequence"] == 2
    assert log.verify()["Valid"] is True
