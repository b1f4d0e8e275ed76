"""The audit trail: an append-only, hash-chained JSON Lines file of every anonymization.

Each line is one record, a JSON object with the caller's fields plus four the log sets:

``Sequence``
    1, 2, 3, ... with no gap.
``Time``
    when the record was appended, UTC, ISO 8601 (``2026-11-22T03:10:00.123456Z``).
``PreviousHash``
    the ``Hash`` of the record before (64 zeros for the first).
``Hash``
    SHA-256, hex, of the record's canonical JSON without ``Hash`` (keys sorted, no spaces, UTF-8), so it covers
    ``PreviousHash`` and with it the whole chain before.

Editing a record breaks its own hash, deleting or reordering one breaks the chain of the next, and a line cut by
a crash does not parse: :meth:`AuditLog.verify` finds each. What a plain hash chain cannot show is the loss of the
newest records together (the file cut back to an earlier, consistent end) or a chain rewritten from some point on
by someone who can write the file: keep :meth:`AuditLog.head` somewhere else (a monitoring system, a printed
report) to compare against.

The log holds no patient data: callers pass Orthanc IDs, profile names, options, counts and PHI-free error texts,
never names, IDs or dates from the DICOM files. As a last guard, a string value containing ``^`` (the component
separator of DICOM person names) is refused with :class:`AuditError`.

Appends take an exclusive ``flock`` on the file, so threads and processes (the plugin's workers, the CLI) can
share one log; each record is written with one ``write`` and ``fsync``-ed before :meth:`AuditLog.append` returns.
An append reads only the end of the file, not the whole of it.

Several Orthancs on one PostgreSQL index keep one trail for all of them in that database instead
(:class:`~.cluster.SharedAuditLog`): the same records, chained and checked by the same functions here
(:func:`check_record`, :func:`seal`, :func:`verify_chain`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from orthanc_anonymizer.errors import AnonymizerError

GENESIS_HASH = "0" * 64
"""The ``PreviousHash`` of the first record."""

LOG_FIELDS = ("Sequence", "Time", "PreviousHash", "Hash")
"""The fields the log sets; a record passed to :meth:`AuditLog.append` must not carry them."""

_TAIL_CHUNK = 64 * 1024


class AuditError(AnonymizerError):
    """A record cannot be appended: a reserved field, a value that is not JSON, or one that looks like a name."""


def canonical_json(record: dict[str, Any]) -> bytes:
    """The bytes the hash is taken over: keys sorted, no whitespace, UTF-8, no NaN or infinity."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``record`` without its ``Hash`` field."""
    body = {key: value for key, value in record.items() if key != "Hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _hash_or_none(record: dict[str, Any]) -> str | None:
    """:func:`record_hash`, or ``None`` for a record read back that cannot be canonical (NaN, say)."""
    try:
        return record_hash(record)
    except ValueError:
        return None


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check_no_person_names(value: object, path: str) -> None:
    if isinstance(value, str):
        if "^" in value:
            raise AuditError(f"audit field {path} looks like a DICOM person name ('^'); the audit log holds no PHI")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_person_names(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_no_person_names(item, f"{path}[{index}]")


def parse_record(line: bytes | str) -> dict[str, Any] | None:
    """The record on ``line``, or ``None`` if it is not a JSON object (cut or garbled)."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def check_record(record: dict[str, object], reject_person_names: bool = True) -> None:
    """:class:`AuditError` if ``record`` sets a field the log sets, is not JSON, or (``reject_person_names``) holds
    a string that looks like a DICOM person name."""
    clash = sorted(set(record) & set(LOG_FIELDS))
    if clash:
        raise AuditError(f"audit record must not set {', '.join(clash)}: the log sets them")
    if not all(isinstance(key, str) for key in record):
        raise AuditError("audit record keys must be strings")
    if reject_person_names:
        _check_no_person_names(record, "record")
    try:
        canonical_json(dict(record))
    except (TypeError, ValueError) as error:
        raise AuditError(f"audit record is not JSON: {type(error).__name__}") from None


def seal(record: dict[str, object], previous_sequence: int, previous_hash: str) -> dict[str, object]:
    """``record`` as stored after the one numbered ``previous_sequence`` with ``previous_hash``: with its Sequence,
    Time, PreviousHash and Hash."""
    stored: dict[str, object] = {
        **record,
        "Sequence": previous_sequence + 1,
        "Time": _utc_now(),
        "PreviousHash": previous_hash,
    }
    stored["Hash"] = record_hash(stored)
    return stored


def seal_many(
    records: Iterable[dict[str, object]], previous_sequence: int, previous_hash: str
) -> list[dict[str, object]]:
    """``records`` sealed one after the other (:func:`seal`), the first after ``previous_sequence``."""
    stored_records: list[dict[str, object]] = []
    for record in records:
        stored = seal(record, previous_sequence, previous_hash)
        stored_records.append(stored)
        previous_sequence, previous_hash = previous_sequence + 1, str(stored["Hash"])
    return stored_records


def verify_chain(records: Iterable[dict[str, Any] | None]) -> dict[str, object]:
    """Check a chain of records, oldest first (``None`` for one that does not parse): ``{"Valid", "Records",
    "BrokenAt"}``, as :meth:`AuditLog.verify` explains."""
    count = 0
    broken_at: int | None = None
    previous_hash = GENESIS_HASH
    for record in records:
        count += 1
        if broken_at is not None:
            continue
        if (
            record is None
            or record.get("Sequence") != count
            or record.get("PreviousHash") != previous_hash
            or record.get("Hash") != _hash_or_none(record)
        ):
            broken_at = count
            continue
        previous_hash = str(record["Hash"])
    return {"Valid": broken_at is None, "Records": count, "BrokenAt": broken_at}


class AuditTrail(Protocol):
    """What the job manager and Gateway mode append to: :class:`AuditLog`, or a cluster's shared trail."""

    def append(self, record: dict[str, Any]) -> dict[str, Any]: ...

    def append_many(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...


class AuditLog:
    """The audit trail in the JSON Lines file at ``path`` (created, with its directory, on the first append).

    One object may be shared by threads; several objects, in several processes, may share one file.
    """

    def __init__(self, path: Path, *, reject_person_names: bool = True) -> None:
        self.path = Path(path)
        self.reject_person_names = reject_person_names
        self._lock = threading.Lock()
        # (inode, size) of the file after our last look at its end, and the Sequence and Hash found there: an
        # append that finds the file unchanged needs to read nothing.
        self._tail_key: tuple[int, int] | None = None
        self._tail: tuple[int, str] = (0, GENESIS_HASH)

    # --- writing ---------------------------------------------------------------------------------------------------

    def append(self, record: dict[str, object]) -> dict[str, object]:
        """Append ``record`` (JSON-ready, no PHI) and return it as stored, with Sequence, Time and both hashes.

        Raises :class:`AuditError` if ``record`` carries a field the log sets, is not JSON-serializable, or holds
        a string that looks like a DICOM person name; :class:`OSError` if the file cannot be written.
        """
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[dict[str, object]]) -> list[dict[str, object]]:
        """Append ``records`` in order, as :meth:`append` does each, with one write and one ``fsync``: all of
        them or (a full disk, an error) none. A batch of on-ingest instances costs one disk round, not one each."""
        for record in records:
            check_record(record, self.reject_person_names)
        if not records:
            return []
        with self._lock, self._open_locked(fcntl.LOCK_EX, create=True) as file:
            assert file is not None
            stat = os.fstat(file.fileno())
            key = (stat.st_ino, stat.st_size)
            if key != self._tail_key:
                self._tail = self._read_tail(file, stat.st_size)
            sequence, previous_hash = self._tail
            stored_records = seal_many(records, sequence, previous_hash)
            lines = b"".join(canonical_json(stored) + b"\n" for stored in stored_records)
            if stat.st_size and not self._ends_with_newline(file, stat.st_size):
                # A line cut by a crash stays on its own line (verify reports it); ours starts on a fresh one.
                lines = b"\n" + lines
            try:
                written = os.write(file.fileno(), lines)
                if written != len(lines):  # a full disk writes part of the lines, then nothing
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(file.fileno())
            except OSError:
                os.ftruncate(file.fileno(), stat.st_size)  # no cut line left to break the chain
                raise
            self._tail_key = (stat.st_ino, stat.st_size + len(lines))
            self._tail = (sequence + len(stored_records), str(stored_records[-1]["Hash"]))
        return stored_records

    @contextlib.contextmanager
    def _open_locked(self, operation: int, *, create: bool = False) -> Iterator[BinaryIO | None]:
        """The log file open for append (``create``) or reading, under ``flock(operation)``; ``None`` if absent."""
        if create:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            if created:
                self._fsync_directory()
            file: BinaryIO = os.fdopen(descriptor, "r+b", buffering=0)
        else:
            try:
                file = self.path.open("rb")
            except FileNotFoundError:
                yield None
                return
        with file:
            fcntl.flock(file.fileno(), operation)
            try:
                yield file
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)

    def _fsync_directory(self) -> None:
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    @staticmethod
    def _ends_with_newline(file: BinaryIO, size: int) -> bool:
        file.seek(size - 1)
        return file.read(1) == b"\n"

    @staticmethod
    def _read_tail(file: BinaryIO, size: int) -> tuple[int, str]:
        """Sequence and Hash of the last record that parses, reading the file backwards from its end."""
        end = size
        pending = b""
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            file.seek(start)
            pending = file.read(end - start) + pending
            end = start
            lines = pending.split(b"\n")
            # The first piece may be the end of a line that starts in an earlier chunk: keep it for later.
            pending = lines[0] if end > 0 else b""
            complete = lines[1:] if end > 0 else lines
            for line in reversed(complete):
                record = parse_record(line) if line.strip() else None
                if record is not None and isinstance(record.get("Sequence"), int):
                    return int(record["Sequence"]), str(record.get("Hash", ""))
        return 0, GENESIS_HASH

    # --- reading ---------------------------------------------------------------------------------------------------

    def _records(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """Each non-blank line as (line number, record or ``None`` when it does not parse), under a shared lock."""
        with self._open_locked(fcntl.LOCK_SH) as file:
            if file is None:
                return
            for number, line in enumerate(file, start=1):
                if line.strip():
                    yield number, parse_record(line)

    def read(self, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Records, oldest first (newest last).

        ``since``: only records with a Sequence greater than it. ``limit``: at most that many; with ``since`` the
        oldest ones after it, so a script pages forward with ``since`` = the last Sequence it saw; without
        ``since`` the newest ones (the tail of the log). Lines that do not parse are skipped (:meth:`verify`
        reports them).
        """
        if limit is not None and limit <= 0:
            return []
        after = since if since is not None else 0
        selected: deque[dict[str, Any]] = deque(maxlen=limit if since is None else None)
        for _, record in self._records():
            if record is None:
                continue
            sequence = record.get("Sequence")
            if isinstance(sequence, int) and sequence > after:
                selected.append(record)
                if since is not None and limit is not None and len(selected) >= limit:
                    break
        return list(selected)

    def head(self) -> tuple[int, str]:
        """Sequence and Hash of the newest record (``(0, GENESIS_HASH)`` for an empty log), to keep elsewhere."""
        with self._open_locked(fcntl.LOCK_SH) as file:
            if file is None:
                return 0, GENESIS_HASH
            return self._read_tail(file, os.fstat(file.fileno()).st_size)

    def verify(self) -> dict[str, object]:
        """Check the chain end to end: ``{"Valid", "Records", "BrokenAt"}``.

        ``Records`` counts the non-blank lines. ``BrokenAt`` is ``None`` when valid, else the Sequence the first
        bad line should have had: every record before it is intact and chained. A record is bad if it does not
        parse, its Sequence is not the next number, its PreviousHash is not the Hash of the record before, or its
        Hash does not match its content.
        """
        return verify_chain(record for _, record in self._records())


class InstanceFailureLike(Protocol):
    """An instance that gave no stored copy (:class:`.pipeline.InstanceFailure`)."""

    @property
    def residual_phi(self) -> bool: ...

    def as_json(self) -> dict[str, object]: ...


MOST_AUDITED_PIXEL_REGIONS = 2000
"""Boxes listed in one audit record; beyond, their number only (a long OCR'd cine can have thousands)."""


def anonymization_record(
    *,
    user: str,
    level: str,
    source: str | None,
    result: str | None,
    source_instances: int,
    instances: int,
    failed: Sequence[InstanceFailureLike],
    settings: Mapping[str, object],
    counts: Mapping[str, int],
    residual_checked: int,
    residual_not_checked: int,
    dry_run: bool = False,
    job: str | None = None,
    complete: bool | None = None,
    mode: str | None = None,
    in_place: bool = False,
    deleted_original: bool = False,
    originals: Mapping[str, object] | None = None,
    pixel_regions: Sequence[Mapping[str, object]] = (),
) -> dict[str, object]:
    """The audit record of one anonymized (or dry-run) resource: the one builder for jobs and Gateway mode.

    IDs, counts, tag numbers and value-free reasons only. A job's record names the ``job`` and says whether the copy
    is ``complete``; Gateway mode's names its ``mode`` instead (it has no job). ``originals``: what InPlace did with
    the originals (:meth:`.server.jobs._Removal.fields`). Residual PHI is counted from the failures' type, never
    from their text."""
    record: dict[str, object] = {
        "Event": "dry-run" if dry_run else "anonymize",
        "User": user,
    }
    if job is not None:
        record["Job"] = job
    if mode is not None:
        record["Mode"] = mode
    record.update(
        {
            "Level": level,
            "Source": source,
            "Result": result,
            "SourceInstances": source_instances,
            "Instances": instances,
        }
    )
    if job is not None:
        record["Complete"] = complete
    record.update(
        {
            "Failed": [failure.as_json() for failure in failed],
            "Settings": settings,
            "InPlace": in_place,
            "DeletedOriginal": deleted_original,
            **(originals or {}),
            "Counts": counts,
            "ResidualPhi": {
                "Checked": residual_checked,
                "NotChecked": residual_not_checked,
                "Leaking": sum(1 for failure in failed if failure.residual_phi),
            },
        }
    )
    if pixel_regions:
        record["PixelRegions"] = list(pixel_regions[:MOST_AUDITED_PIXEL_REGIONS])
        if len(pixel_regions) > MOST_AUDITED_PIXEL_REGIONS:
            record["PixelRegionsNotListed"] = len(pixel_regions) - MOST_AUDITED_PIXEL_REGIONS
    return record
