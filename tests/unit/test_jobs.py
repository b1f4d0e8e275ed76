"""Jobs without Orthanc: a fake Orthanc in memory, the real engine, real job records and audit trail."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from orthanc_anonymizer.audit import AuditLog
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import InstanceOutcome, InstanceTask, anonymize_instance
from orthanc_anonymizer.server import workers
from orthanc_anonymizer.server.job_records import Job, JobSettings, JobState, JobStore
from orthanc_anonymizer.server.jobs import JobManager
from orthanc_anonymizer.server.links import LinkIndex
from orthanc_anonymizer.server.orthanc_client import OrthancUnreachable, ResourceNotFound

T = TypeVar("T")


def _id(*parts: str) -> str:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


class FakeOrthanc:
    """Just enough of Orthanc's REST API, in memory, with Orthanc-like IDs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.parents: dict[str, dict[str, str]] = {}
        self.metadata: dict[tuple[str, str, str], str] = {}
        self.deleted: list[tuple[str, str]] = []
        self.lock = threading.Condition()
        self.in_memory = 0
        """Instances downloaded by the job and not yet stored back."""
        self.max_in_memory = 0
        self.first_store_waits_for_overlap = False
        """How long storing an instance takes (the copy stays in memory meanwhile, as during a real POST)."""

    def add(self, data: bytes) -> dict[str, str]:
        ds = dcmread(BytesIO(data))
        # Orthanc's own IDs: SHA-1 of the patient's, study's, series' and instance's identifiers.
        identity = [str(ds.PatientID), ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID]
        patient, study, series, instance = (_id(*identity[: n + 1]) for n in range(4))
        with self.lock:
            self.files[instance] = data
            self.parents[instance] = {
                "ID": instance,
                "ParentSeries": series,
                "ParentStudy": study,
                "ParentPatient": patient,
                "Status": "Success",
            }
        return self.parents[instance]

    def instances_of(self, level: str, resource: str) -> list[dict[str, Any]]:
        key = {"instances": "ID", "series": "ParentSeries", "studies": "ParentStudy", "patients": "ParentPatient"}
        found = [dict(p) for p in self.parents.values() if p[key[level]] == resource]
        if not found:
            raise ResourceNotFound("GET", f"/{level}/{resource}", 404)
        return found

    def instance_ids(self, level: str, resource: str) -> list[tuple[str, str]]:
        return [(p["ID"], p["ParentSeries"]) for p in self.instances_of(level, resource)]

    def count_instances(self, level: str, resource: str) -> int:
        return len(self.instances_of(level, resource))

    def endpoint(self) -> FakeOrthanc:
        """Where the workers read originals from: in these tests, this very object (no process boundary)."""
        return self

    def instance_file(self, instance: str) -> bytes:
        with self.lock:
            self.in_memory += 1
            self.max_in_memory = max(self.max_in_memory, self.in_memory)
            self.lock.notify_all()
        return self.files[instance]

    def store_instance(self, data: bytes) -> dict[str, str]:
        with self.lock:
            if self.first_store_waits_for_overlap:
                # The first store lasts until the next instance is downloaded meanwhile, as a pipeline does (or,
                # if it never is, a minute: then the assertion on max_in_memory fails).
                self.first_store_waits_for_overlap = False
                self.lock.wait_for(lambda: self.in_memory > 1, timeout=60)
            self.in_memory -= 1
        return self.add(data)

    def stored_md5(self, instance: str) -> str:
        return hashlib.md5(self.files[instance]).hexdigest()

    def get_json(self, path: str) -> dict[str, str]:
        _, level, resource = path.split("/")
        any_child = next(
            p for p in self.parents.values() if p["ParentSeries" if level == "series" else "ParentStudy"] == resource
        )
        return {"ParentStudy": any_child["ParentStudy"], "ParentPatient": any_child["ParentPatient"]}

    def put_metadata(self, level: str, resource: str, name: str, value: str) -> None:
        self.metadata[(level, resource, name)] = value

    def delete(self, level: str, resource: str) -> None:
        self.deleted.append((level, resource))
        with self.lock:
            for instance in [p["ID"] for p in self.instances_of(level, resource)]:
                del self.files[instance], self.parents[instance]

    def close(self) -> None:
        pass


class InProcessPool:
    """The worker function in threads (the real processes are tested in test_jobs_worker_pool.py)."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(2)

    def submit(self, data: bytes, task: InstanceTask) -> Future[InstanceOutcome]:
        return self.executor.submit(anonymize_instance, data, task)

    def call(self, function: Callable[..., T], *args: Any) -> Future[T]:
        return self.executor.submit(function, *args)


def make_files(count: int, patient_id: str = "PID-UNIT-1", leaky: set[int] | None = None) -> list[bytes]:
    template = dcmread(get_testdata_file("CT_small.dcm"))
    template.PatientID = patient_id
    study, series = generate_uid(), generate_uid()
    files = []
    for number in range(count):
        template.StudyInstanceUID, template.SeriesInstanceUID = study, series
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        template.Manufacturer = "Patientname Imaging" if number in (leaky or set()) else "Generic"
        template.PatientName = "Patientname^Unit"
        buffer = BytesIO()
        template.save_as(buffer)
        files.append(buffer.getvalue())
    return files


@pytest.fixture
def orthanc() -> FakeOrthanc:
    return FakeOrthanc()


def make_manager(orthanc: FakeOrthanc, tmp_path: Path, **options: Any) -> JobManager:
    return JobManager(
        client=orthanc,  # type: ignore[arg-type]
        pool=InProcessPool(),
        links=LinkIndex(tmp_path / "links.sqlite"),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        store=JobStore(tmp_path / "jobs"),
        hasher=KeyedHasher(b"unit-test-secret"),
        concurrent_jobs=1,
        window=3,
        **options,
    )


@pytest.fixture(params=[False, True], ids=["job-thread-stores", "worker-stores"])
def manager(orthanc: FakeOrthanc, tmp_path: Path, request: pytest.FixtureRequest):
    """Every test below twice: the job's thread stores each copy, or (Copy mode on a links file) the worker that
    made it does; either way the same guarantees hold."""
    manager = make_manager(orthanc, tmp_path, workers_store=request.param, worker_stores_from=0)
    assert manager.workers_store is request.param
    yield manager
    manager.shutdown()
    worker_links = workers._worker_links.pop(str(tmp_path / "links.sqlite"), None)
    if worker_links is not None:
        worker_links.close()


def run(manager: JobManager, level: str, resources: list[str], **settings: Any) -> Job:
    job = manager.submit(
        Job(level=level, resources=resources, settings=JobSettings(basic_profile(), **settings), user="u")
    )
    assert job.done.wait(60)
    return job


def test_study_is_streamed_a_window_at_a_time(manager: JobManager, orthanc: FakeOrthanc) -> None:
    study = {orthanc.add(data)["ParentStudy"] for data in make_files(30)}.pop()
    # The next instances are fetched while one is stored (a pipeline), up to the window. The first store waits for a
    # download to overlap it: otherwise whether one does is up to the thread scheduler (once, on Python 3.13, none did).
    orthanc.first_store_waits_for_overlap = True
    job = run(manager, "studies", [study])
    assert job.state is JobState.SUCCESS and job.progress == 100
    (result,) = job.record()["Results"]
    assert result["Instances"] == 30 and result["Failed"] == []
    assert 1 < orthanc.max_in_memory <= 3
    assert len(orthanc.files) == 60


def test_failing_instance_is_listed_and_blocks_in_place_deletion(manager: JobManager, orthanc: FakeOrthanc) -> None:
    files = make_files(4, leaky={2})
    originals = {orthanc.add(data)["ID"]: data for data in files}
    study = orthanc.parents[next(iter(originals))]["ParentStudy"]
    job = run(manager, "studies", [study], in_place=True)
    (result,) = job.record()["Results"]
    assert job.state is JobState.FAILURE
    assert result["Instances"] == 3
    (failed,) = result["Failed"]
    assert "residual PHI" in failed["Reason"] and "Patientname" not in failed["Reason"]
    assert result["Deleted"] is False and orthanc.deleted == []
    assert all(orthanc.files[oid] == data for oid, data in originals.items())
    assert any("original kept" in error for error in job.errors)


def test_in_place_deletes_after_everything_is_stored(manager: JobManager, orthanc: FakeOrthanc) -> None:
    study = {orthanc.add(data)["ParentStudy"] for data in make_files(3)}.pop()
    originals = set(orthanc.files)
    job = run(manager, "studies", [study], in_place=True)
    assert job.record()["Results"][0]["Deleted"] is True
    # One instance at a time, never the study as a whole (it may have grown since it was listed).
    assert sorted(orthanc.deleted) == sorted(("instances", original) for original in originals)
    assert not originals & set(orthanc.files)


def test_in_place_keeps_what_arrived_after_the_listing(orthanc: FakeOrthanc, tmp_path: Path) -> None:
    files = make_files(4)
    study = {orthanc.add(data)["ParentStudy"] for data in files[:2]}.pop()
    arrived: list[str] = []

    def arrive(job_id: str, point: str) -> None:  # a modality still sending, between the listing and the end
        if point == "listed":
            arrived.extend(orthanc.add(data)["ID"] for data in files[2:])

    manager = make_manager(orthanc, tmp_path, hold=arrive)
    try:
        job = run(manager, "studies", [study], in_place=True)
    finally:
        manager.shutdown()
    (result,) = job.record()["Results"]
    assert job.state is JobState.SUCCESS and result["Instances"] == 2
    assert result["Deleted"] is False and result["OriginalsDeleted"] == 2 and result["OriginalsKept"] == 2
    assert [reason["Instances"] for reason in result["OriginalsKeptBecause"]] == [2]
    assert all(oid in orthanc.files for oid in arrived)
    assert ("studies", study) not in orthanc.deleted


def test_links_metadata_audit_and_record(manager: JobManager, orthanc: FakeOrthanc, tmp_path: Path) -> None:
    stored = [orthanc.add(data) for data in make_files(2)]
    study = stored[0]["ParentStudy"]
    job = run(manager, "studies", [study])
    copy = job.record()["Results"][0]["Resource"]
    assert orthanc.metadata[("studies", copy, "AnonymizedFromResource")] == study
    profile = json.loads(orthanc.metadata[("studies", copy, "AnonymizationProfile")])
    assert profile["Profile"] == "basic" and profile["Options"] == []
    assert manager.links.copies("Study", study) == [copy]
    assert manager.links.source("Patient", orthanc.parents[next(iter(orthanc.files))]["ParentPatient"]) is None
    (record,) = manager.audit.read()  # type: ignore[attr-defined]
    assert record["Source"] == study and record["Result"] == copy and record["User"] == "u"
    assert record["ResidualPhi"] == {"Checked": 2, "NotChecked": 0, "Leaking": 0}
    saved = json.loads((tmp_path / "jobs" / f"{job.id}.json").read_text())
    assert saved == job.record()
    assert "Patientname" not in (tmp_path / "audit.jsonl").read_text() + json.dumps(saved)


def test_a_copy_that_cannot_be_linked_is_not_stored_and_its_instance_fails(
    manager: JobManager, orthanc: FakeOrthanc
) -> None:
    originals = [orthanc.add(data) for data in make_files(3)]
    study = originals[0]["ParentStudy"]
    # The index cannot be written (a read-only file), from the job's thread nor from a worker.
    manager.links._connection.execute("PRAGMA query_only = ON")
    if manager.workers_store:
        path = str(manager.links.path)  # type: ignore[attr-defined]
        workers._worker_links[path] = LinkIndex(Path(path))
        workers._worker_links[path]._connection.execute("PRAGMA query_only = ON")
    job = run(manager, "studies", [study])
    assert job.state is JobState.FAILURE
    failed = job.record()["Results"][0]["Failed"]
    assert len(failed) == 3
    # The instance's link is written before its copy is stored: no copy without its link, none stored here.
    assert all(f["Reason"].startswith("cannot link the copy (not stored): LinkStoreError") for f in failed)
    assert "links index (links.sqlite) cannot be written" in failed[0]["Reason"]
    assert set(orthanc.files) == {o["ID"] for o in originals} and orthanc.deleted == []
    assert job.record()["Results"][0]["Instances"] == 0 and job.record()["Results"][0]["Complete"] is False


def test_a_batch_of_single_instances_gets_one_audit_record_each_in_order(
    manager: JobManager, orthanc: FakeOrthanc
) -> None:
    """As on-ingest submits them: the records of the batch are appended together, in the order of the batch."""
    instances = [orthanc.add(data)["ID"] for data in make_files(5)]
    job = run(manager, "instances", [instances[2], "gone", *instances[:2], *instances[3:]])
    records = manager.audit.read()  # type: ignore[attr-defined]
    assert [record["Source"] for record in records] == [instances[2], *instances[:2], *instances[3:]]
    assert [result.get("Audit") for result in job.record()["Results"]] == [1, None, 2, 3, 4, 5]
    assert all(result["Instances"] == 1 for result in job.record()["Results"] if result["Source"] != "gone")
    assert manager.audit.verify()["Valid"] is True  # type: ignore[attr-defined]


def test_unknown_resource_in_a_batch_does_not_stop_the_others(manager: JobManager, orthanc: FakeOrthanc) -> None:
    study = {orthanc.add(data)["ParentStudy"] for data in make_files(1)}.pop()
    job = run(manager, "studies", ["nope", study, "gone"])
    assert job.state is JobState.FAILURE
    assert job.record()["Results"][0] == {"Source": "nope", "Level": "Study", "Error": "unknown resource"}
    assert job.record()["Results"][1]["Instances"] == 1
    assert job.record()["Results"][2]["Error"] == "unknown resource"
    assert job.errors == ["studies/nope: unknown resource", "studies/gone: unknown resource"]
    assert job.not_found == {"nope", "gone"}  # what the routes answer 404 for, and ingest skips


def test_interrupted_jobs_are_marked_failed(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = Job(level="studies", resources=["a"], settings=JobSettings(basic_profile()), user="u")
    job.state = JobState.RUNNING
    store.save(job.record())
    assert store.mark_interrupted() == 1
    record = store.load(job.id)
    assert record is not None and record["State"] == JobState.FAILURE
    assert "interrupted" in record["Errors"][-1]
    assert store.load("../../etc/passwd") is None


def test_ended_jobs_leave_memory_but_not_disk(manager: JobManager, orthanc: FakeOrthanc) -> None:
    manager.KEPT_IN_MEMORY = 1
    study = {orthanc.add(data)["ParentStudy"] for data in make_files(1)}.pop()
    first, second = run(manager, "studies", [study]), run(manager, "studies", [study])
    assert first.id not in manager._jobs and second.id in manager._jobs
    assert manager.record(first.id) == first.record()


@pytest.mark.parametrize("how", ["plugin stopping", "connection refused"])
def test_orthanc_stopping_ends_the_running_job_early_and_keeps_the_original(
    manager: JobManager, orthanc: FakeOrthanc, how: str
) -> None:
    study = {orthanc.add(data)["ParentStudy"] for data in make_files(40)}.pop()
    real_file = orthanc.instance_file
    calls = []

    def file_then_stop(instance: str) -> bytes:
        """Orthanc begins to stop once the first instance was read."""
        calls.append(instance)
        if how == "plugin stopping":
            manager.stopping.set()
        elif len(calls) > 1:
            raise OrthancUnreachable("GET", f"/instances/{instance}/file", 0, "no connection")
        return real_file(instance)

    orthanc.instance_file = file_then_stop  # type: ignore[method-assign]
    job = manager.submit(
        Job(level="studies", resources=[study], settings=JobSettings(basic_profile(), in_place=True), user="u")
    )
    assert job.done.wait(30)
    assert job.state is JobState.FAILURE
    assert job.errors == [
        f"studies/{study}: original kept (InPlace): {job.record()['Results'][0]['Instances']} of 40 instances stored",
        "interrupted: Orthanc stopped before the job ended",
    ]
    # The instances already handed to the workers (at most the window of 3) are finished, no more.
    assert 1 <= job.record()["Results"][0]["Instances"] <= 3 and job.record()["Results"][0]["Deleted"] is False
    assert orthanc.deleted == []
    assert manager.audit.read()[-1]["Instances"] == job.record()["Results"][0]["Instances"]  # type: ignore[attr-defined]
    if how == "plugin stopping":  # a job queued while the plugin stops does not start
        queued = manager.submit(
            Job(level="studies", resources=[study], settings=JobSettings(basic_profile()), user="u")
        )
        assert queued.done.wait(30)
        assert queued.state is JobState.FAILURE and queued.results == []


def test_a_copy_is_in_the_links_index_before_it_is_stored(manager: JobManager, orthanc: FakeOrthanc) -> None:
    """So that on-ingest anonymization, which may see the copy arrive before the job ends, knows it for a copy
    (on every node of a cluster), whatever the copy's own attributes say."""
    originals = [orthanc.add(data)["ID"] for data in make_files(3)]
    known_when_stored: list[bool] = []
    store = orthanc.store_instance

    def checking_store(data: bytes) -> dict[str, str]:
        ds = dcmread(BytesIO(data))
        copy = _id(str(ds.PatientID), ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        known_when_stored.append(manager.links.source("Instance", copy) in originals)
        return store(data)

    orthanc.store_instance = checking_store  # type: ignore[method-assign]
    job = run(manager, "instances", originals)
    assert job.state is JobState.SUCCESS and known_when_stored == [True, True, True]
    for result in job.record()["Results"]:
        assert manager.links.copies("Instance", result["Source"]) == [result["Resource"]]


def test_with_register_stores_a_copy_is_known_by_its_bytes_while_it_is_stored(
    orthanc: FakeOrthanc, tmp_path: Path
) -> None:
    """Gateway mode's proof that what Orthanc hands its received-instance callback is the plugin's own copy."""
    manager = make_manager(orthanc, tmp_path, register_stores=True)
    originals = [orthanc.add(data)["ID"] for data in make_files(2)]
    seen: list[tuple[bool, bool]] = []
    store = orthanc.store_instance

    def checking_store(data: bytes) -> dict[str, str]:
        seen.append((manager.is_storing(data), manager.is_storing(data + b"\0")))
        return store(data)

    orthanc.store_instance = checking_store  # type: ignore[method-assign]
    try:
        run(manager, "instances", originals)
    finally:
        manager.shutdown()
    assert seen == [(True, False), (True, False)]  # those exact bytes, nothing else
    assert not any(manager.is_storing(orthanc.files[oid]) for oid in orthanc.files)  # and only while stored


def test_the_copies_bytes_go_back_to_the_job_only_when_it_stores_them(
    manager: JobManager, orthanc: FakeOrthanc
) -> None:
    """With ``workers_store`` (Copy mode on a links file), what the job's thread receives is the copy's IDs, not its
    bytes: they never pass through Orthanc's Python. A dry run stores nothing, so its workers never do."""
    study = {orthanc.add(data)["ParentStudy"] for data in make_files(3)}.pop()
    received: list[Future[Any]] = []
    call = manager.pool.call

    def recording(function: Callable[..., T], *args: Any) -> Future[T]:
        future = call(function, *args)
        received.append(future)
        return future

    manager.pool.call = recording  # type: ignore[method-assign]
    assert run(manager, "studies", [study]).state is JobState.SUCCESS
    fetched = [future.result() for future in received]
    if manager.workers_store:
        assert all(f.copy_ids is not None and f.outcome.data is None for f in fetched)
    else:
        assert all(f.copy_ids is None and f.outcome.data is not None for f in fetched)
    received.clear()
    assert run(manager, "studies", [study], dry_run=True).state is JobState.SUCCESS
    assert [f.result().copy_ids for f in received] == [None] * 3
    assert len(orthanc.files) == 6


@pytest.mark.parametrize(("threshold", "stored_by_worker"), [(4.0, False), (0.25, True)])
def test_a_worker_leaves_a_small_copy_to_the_jobs_thread(
    orthanc: FakeOrthanc, tmp_path: Path, threshold: float, stored_by_worker: bool
) -> None:
    """Below ``worker_stores_from`` bytes the copy goes back to the job's thread, which stores it; at or above,
    the worker stores it. Either way each original gets exactly one linked copy."""
    files = make_files(2)
    # The copy is about the original's size: the thresholds are far on either side of it.
    manager = make_manager(orthanc, tmp_path, workers_store=True, worker_stores_from=int(threshold * len(files[0])))
    originals = [orthanc.add(data)["ID"] for data in files]
    received: list[Future[Any]] = []
    call = manager.pool.call

    def recording(function: Callable[..., T], *args: Any) -> Future[T]:
        received.append(call(function, *args))
        return received[-1]

    manager.pool.call = recording  # type: ignore[method-assign]
    try:
        job = run(manager, "instances", originals)
    finally:
        manager.shutdown()
        worker_links = workers._worker_links.pop(str(tmp_path / "links.sqlite"), None)
        if worker_links is not None:
            worker_links.close()
    assert job.state is JobState.SUCCESS
    assert [(f.result().copy_ids is not None) for f in received] == [stored_by_worker] * 2
    for result in job.record()["Results"]:
        assert manager.links.copies("Instance", result["Source"]) == [result["Resource"]]
        assert orthanc.metadata[("instances", result["Resource"], "AnonymizedFromResource")] == result["Source"]
