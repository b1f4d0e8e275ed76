"""A full disk under the plugin's state folder: no cut audit line, no half-written job record, a reason in words."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from orthanc_anonymizer import audit as audit_module
from orthanc_anonymizer.audit import AuditLog
from orthanc_anonymizer.jobs import JobStore
from orthanc_anonymizer.logs import exception_summary


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
