"""The audit trail: what an auditor checks (the chain, tampering, deletion) and what concurrent writers must keep."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from orthanc_anonymizer.audit import GENESIS_HASH, AuditError, AuditLog, record_hash


def anonymization(number: int) -> dict[str, object]:
    return {
        "Event": "Anonymize",
        "User": "alice",
        "Source": f"study-{number}",
        "Resource": f"copy-{number}",
        "Profile": "basic",
        "Options": ["CleanDesc"],
        "Instances": number,
        "Failed": [],
    }


def filled_log(path: Path, count: int) -> AuditLog:
    log = AuditLog(path)
    for number in range(1, count + 1):
        log.append(anonymization(number))
    return log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_records_are_numbered_timed_and_chained(tmp_path: Path) -> None:
    log = filled_log(tmp_path / "audit" / "audit.jsonl", 3)
    records = log.read()
    assert [record["Sequence"] for record in records] == [1, 2, 3]
    assert records[0]["PreviousHash"] == GENESIS_HASH
    assert records[1]["PreviousHash"] == records[0]["Hash"]
    assert records[2]["PreviousHash"] == records[1]["Hash"]
    for record in records:
        assert record["Hash"] == record_hash(record)
        assert datetime.fromisoformat(str(record["Time"])).utcoffset() == timedelta(0)
        assert str(record["Time"]).endswith("Z")
    assert records[2]["Source"] == "study-3"
    assert log.verify() == {"Valid": True, "Records": 3, "BrokenAt": None}


def test_append_returns_the_record_as_stored(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    stored = log.append(anonymization(1))
    assert stored == log.read()[0]
    assert json.loads(lines(tmp_path / "audit.jsonl")[0]) == stored


def test_an_empty_or_missing_log_is_valid(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "never-written.jsonl")
    assert log.verify() == {"Valid": True, "Records": 0, "BrokenAt": None}
    assert log.read() == []
    assert log.head() == (0, GENESIS_HASH)


def test_editing_a_record_is_found_at_that_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 5)
    content = lines(path)
    content[2] = content[2].replace('"Instances":3', '"Instances":4')
    path.write_text("".join(content))
    assert AuditLog(path).verify() == {"Valid": False, "Records": 5, "BrokenAt": 3}


def test_editing_a_record_and_recomputing_its_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 5)
    content = lines(path)
    record = json.loads(content[1])
    record["User"] = "mallory"
    record["Hash"] = record_hash(record)
    content[1] = json.dumps(record) + "\n"
    path.write_text("".join(content))
    assert AuditLog(path).verify()["BrokenAt"] == 3


def test_deleting_a_middle_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 5)
    content = lines(path)
    del content[2]
    path.write_text("".join(content))
    assert AuditLog(path).verify() == {"Valid": False, "Records": 4, "BrokenAt": 3}


def test_deleting_the_first_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 3)
    path.write_text("".join(lines(path)[1:]))
    assert AuditLog(path).verify()["BrokenAt"] == 1


def test_swapping_two_records_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 4)
    content = lines(path)
    content[1], content[2] = content[2], content[1]
    path.write_text("".join(content))
    assert AuditLog(path).verify()["BrokenAt"] == 2


def test_a_line_cut_by_a_crash_is_reported_and_later_records_still_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 3)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # the last record half written, no newline
    log = AuditLog(path)
    assert log.verify() == {"Valid": False, "Records": 3, "BrokenAt": 3}
    stored = log.append(anonymization(4))
    # The new record starts on its own line and chains to the last record that survived whole.
    assert stored["Sequence"] == 3
    assert len(lines(path)) == 4
    assert log.verify()["BrokenAt"] == 3
    assert [record["Sequence"] for record in log.read()] == [1, 2, 3]


def test_the_newest_records_cannot_be_told_from_a_shorter_log_without_the_head(tmp_path: Path) -> None:
    """The documented limit of a hash chain: keep ``head()`` elsewhere to notice the end being cut off."""
    path = tmp_path / "audit.jsonl"
    log = filled_log(path, 3)
    head = log.head()
    assert head == (3, log.read()[-1]["Hash"])
    path.write_text("".join(lines(path)[:2]))
    assert log.verify()["Valid"] is True
    assert log.head() != head


def test_read_pages_forward_with_since_and_shows_the_tail_with_limit(tmp_path: Path) -> None:
    log = filled_log(tmp_path / "audit.jsonl", 10)

    def sequences(**query: int) -> list[object]:
        return [record["Sequence"] for record in log.read(**query)]

    assert sequences() == list(range(1, 11))
    assert sequences(since=7) == [8, 9, 10]
    assert sequences(since=2, limit=3) == [3, 4, 5]  # the next page after what a script saw
    assert sequences(limit=3) == [8, 9, 10]  # the newest, still newest last
    assert sequences(since=10) == []
    assert sequences(limit=0) == []


def test_records_that_could_carry_phi_or_clash_with_the_chain_are_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(AuditError, match=r"record\.Failed\[0\]\.Reason looks like a DICOM person name"):
        log.append({"Failed": [{"Instance": "x", "Reason": "bad value DOE^JOHN"}]})
    with pytest.raises(AuditError, match="must not set Hash, Sequence"):
        log.append({"Sequence": 7, "Hash": "0"})
    with pytest.raises(AuditError, match="not JSON"):
        log.append({"When": datetime.now()})
    with pytest.raises(AuditError, match="not JSON"):
        log.append({"Ratio": float("nan")})
    assert not (tmp_path / "audit.jsonl").exists() or log.read() == []
    with pytest.raises(AuditError) as caught:
        log.append({"Who": "DOE^JOHN"})
    assert "DOE" not in str(caught.value)  # the error names the field, never the value


def test_an_append_reads_only_the_end_of_a_long_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    filled_log(path, 300)
    reads: list[int] = []
    original = AuditLog._read_tail

    def counting_read_tail(file: object, size: int) -> tuple[int, str]:
        reads.append(size)
        return original(file, size)  # type: ignore[arg-type]

    monkeypatch.setattr(AuditLog, "_read_tail", staticmethod(counting_read_tail))
    log = AuditLog(path)  # a fresh object, as in a new process: it must look at the end once
    for number in range(5):
        log.append(anonymization(number))
    assert len(reads) == 1
    assert log.verify() == {"Valid": True, "Records": 305, "BrokenAt": None}


def test_a_record_larger_than_the_tail_chunk_still_chains(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append({"Failed": [f"instance-{number:06d}" for number in range(20000)]})
    log = AuditLog(path)
    assert log.append(anonymization(2))["Sequence"] == 2
    assert log.verify()["Valid"] is True


def test_threads_sharing_one_log_keep_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    threads = [
        threading.Thread(target=lambda base=base: [log.append(anonymization(base + n)) for n in range(25)])
        for base in range(0, 200, 25)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.verify() == {"Valid": True, "Records": 200, "BrokenAt": None}


def _append_many(path: str, worker: int, count: int) -> None:
    log = AuditLog(Path(path))
    for number in range(count):
        log.append({"Worker": worker, "Number": number})


def test_concurrent_appends_from_several_processes_keep_the_chain_valid(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append({"Event": "Start"})  # the parent's object caches the end, then others write
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), worker, 40)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    log = AuditLog(path)
    assert log.verify() == {"Valid": True, "Records": 161, "BrokenAt": None}
    records = log.read()
    for worker in range(4):
        assert [r["Number"] for r in records if r.get("Worker") == worker] == list(range(40))


def test_an_object_that_cached_the_end_notices_appends_by_others(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = AuditLog(path)
    second = AuditLog(path)
    first.append(anonymization(1))
    second.append(anonymization(2))
    first.append(anonymization(3))
    assert first.verify() == {"Valid": True, "Records": 3, "BrokenAt": None}


def test_a_batch_is_appended_in_order_with_one_disk_round_and_chains_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orthanc_anonymizer.audit as audit_module

    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"Event": "anonymize", "Source": "first"})
    syncs: list[int] = []
    real_fsync = audit_module.os.fsync
    monkeypatch.setattr(audit_module.os, "fsync", lambda descriptor: syncs.append(descriptor) or real_fsync(descriptor))
    stored = log.append_many([{"Event": "anonymize", "Source": f"instance-{n}"} for n in range(64)])
    monkeypatch.undo()
    assert len(syncs) == 1  # one fsync for the 64 records of an on-ingest batch
    assert [record["Sequence"] for record in stored] == list(range(2, 66))
    assert [record["Source"] for record in log.read()] == ["first"] + [f"instance-{n}" for n in range(64)]
    assert log.read()[1:] == stored
    assert log.append({"Event": "anonymize", "Source": "last"})["Sequence"] == 66
    assert log.verify() == {"Valid": True, "Records": 66, "BrokenAt": None}
    assert log.append_many([]) == []


def test_a_batch_with_one_bad_record_writes_none_of_them(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(AuditError, match="Sequence"):
        log.append_many([{"Event": "anonymize", "Source": "good"}, {"Event": "anonymize", "Sequence": 7}])
    assert log.read() == []
