"""A worker that stores its own copy (Copy mode, links in this Orthanc's file): the job thread's guarantees, step
by step, with an Orthanc that fails at each step."""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from test_jobs import make_files

from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.settings import AnonymizationSettings
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import InstanceOutcome, InstanceTask, anonymize_instance
from orthanc_anonymizer.server.links import LinkIndex
from orthanc_anonymizer.server.orthanc_client import OrthancError, OrthancUnreachable
from orthanc_anonymizer.server.workers import OTHER_BYTES_KEPT, store_copy

ORIGINAL = "original-instance-id"


class Writer:
    """Orthanc's answers to a worker's store, its MD5 and its metadata; ``fail_at`` names the step that fails."""

    def __init__(self, fail_at: str = "", status: str = "Success", kept: bytes | None = None) -> None:
        self.fail_at, self.status, self.kept = fail_at, status, kept
        self.stored: list[bytes] = []
        self.metadata: dict[tuple[str, str], str] = {}
        self.md5_asked = 0

    def _step(self, name: str) -> None:
        if self.fail_at == name:
            raise OrthancError("POST", "/instances", 500, "refused")
        if self.fail_at == f"{name}-unreachable":
            raise OrthancUnreachable("POST", "/instances", 0, "connection refused")

    def instance_file(self, instance_id: str) -> bytes:
        raise AssertionError("not read here")

    def store_instance(self, data: bytes) -> dict[str, Any]:
        self._step("store")
        self.stored.append(data)
        return {"ID": "copy", "ParentSeries": "s", "ParentStudy": "st", "ParentPatient": "p", "Status": self.status}

    def stored_md5(self, instance_id: str) -> str:
        self._step("md5")
        self.md5_asked += 1
        return hashlib.md5(self.kept if self.kept is not None else self.stored[-1]).hexdigest()

    def put_metadata(self, level: str, resource_id: str, name: str, value: str) -> None:
        self._step("metadata")
        self.metadata[(resource_id, name)] = value


@pytest.fixture
def outcome() -> InstanceOutcome:
    task = InstanceTask(AnonymizationSettings(profile=basic_profile(), hasher=KeyedHasher(b"unit")))
    made = anonymize_instance(make_files(1)[0], task)
    assert made.failure is None and made.orthanc_id is not None
    return made


def _store(writer: Writer, links: LinkIndex, outcome: InstanceOutcome, verify_md5: bool = False) -> Any:
    return store_copy(writer, links, ORIGINAL, outcome, '{"Profile": "basic"}', verify_md5)


def test_the_copy_is_linked_then_stored_then_described_and_only_its_ids_go_back(
    outcome: InstanceOutcome, tmp_path: Path
) -> None:
    links = LinkIndex(tmp_path / "links.sqlite")
    data, orthanc_id = outcome.data, outcome.orthanc_id
    linked_when_stored: list[str | None] = []
    writer = Writer()
    store = writer.store_instance

    def checking_store(copy: bytes) -> dict[str, Any]:
        linked_when_stored.append(links.source("Instance", str(orthanc_id)))
        return store(copy)

    writer.store_instance = checking_store  # type: ignore[method-assign]
    fetched = _store(writer, links, outcome)
    assert fetched.store_error is None
    assert fetched.copy_ids == {"instances": "copy", "series": "s", "studies": "st", "patients": "p"}
    assert writer.stored == [data] and linked_when_stored == [ORIGINAL]
    assert writer.metadata == {
        ("copy", "AnonymizedFromResource"): ORIGINAL,
        ("copy", "AnonymizationProfile"): '{"Profile": "basic"}',
    }
    assert fetched.outcome.data is None and fetched.outcome.parts is None  # the bytes stay in the worker
    assert writer.md5_asked == 0  # Orthanc said it stored these bytes: no second request
    assert dcmread(BytesIO(writer.stored[0])).PatientName != dcmread(BytesIO(make_files(1)[0])).PatientName


def test_a_copy_that_cannot_be_linked_is_not_stored(outcome: InstanceOutcome, tmp_path: Path) -> None:
    links = LinkIndex(tmp_path / "links.sqlite")
    links._connection.execute("PRAGMA query_only = ON")
    writer = Writer()
    fetched = _store(writer, links, outcome)
    assert fetched.copy_ids is None and writer.stored == []
    assert fetched.store_error.startswith("cannot link the copy (not stored): LinkStoreError")


@pytest.mark.parametrize("step", ["store", "md5", "metadata"])
def test_orthanc_failing_at_a_step_fails_the_instance(outcome: InstanceOutcome, tmp_path: Path, step: str) -> None:
    writer = Writer(fail_at=step)
    fetched = _store(writer, LinkIndex(tmp_path / "links.sqlite"), outcome, verify_md5=True)
    assert fetched.copy_ids is None and not fetched.unreachable
    assert fetched.store_error == "cannot store the copy: POST /instances: HTTP 500: refused"
    assert (writer.stored != []) is (step != "store")  # what Orthanc stored stays linked (the index says copy)


def test_orthanc_stopping_is_not_a_verdict_on_the_instance(outcome: InstanceOutcome, tmp_path: Path) -> None:
    fetched = _store(Writer(fail_at="store-unreachable"), LinkIndex(tmp_path / "links.sqlite"), outcome)
    assert fetched.copy_ids is None and fetched.unreachable
    assert fetched.store_error.startswith("cannot store the copy: ")


@pytest.mark.parametrize(("status", "verify_md5"), [("AlreadyStored", False), ("Success", True)])
def test_other_bytes_kept_by_orthanc_fail_the_instance(
    outcome: InstanceOutcome, tmp_path: Path, status: str, verify_md5: bool
) -> None:
    """Orthanc answered AlreadyStored (it may have kept an older file), or InPlace will delete the original: the
    stored file's MD5 is compared with the copy's."""
    writer = Writer(status=status, kept=b"an older file with the same SOPInstanceUID")
    fetched = _store(writer, LinkIndex(tmp_path / "links.sqlite"), outcome, verify_md5=verify_md5)
    assert fetched.copy_ids is None and fetched.store_error == OTHER_BYTES_KEPT and writer.md5_asked == 1
    assert writer.metadata == {}


@pytest.mark.parametrize(("status", "verify_md5"), [("AlreadyStored", False), ("Success", True)])
def test_the_same_bytes_kept_by_orthanc_are_a_stored_copy(
    outcome: InstanceOutcome, tmp_path: Path, status: str, verify_md5: bool
) -> None:
    writer = Writer(status=status)
    fetched = _store(writer, LinkIndex(tmp_path / "links.sqlite"), outcome, verify_md5=verify_md5)
    assert fetched.store_error is None and fetched.copy_ids is not None and writer.md5_asked == 1
