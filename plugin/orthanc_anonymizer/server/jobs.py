"""Anonymization jobs: resources in, worker processes, stored copies, links, an audit record out.

orthanc-python 4.0 has no job API, so the plugin keeps its own. A :class:`JobManager` runs a few jobs at a time on
its own threads (never on Orthanc's callback threads) and talks to Orthanc only through loopback HTTP
(:mod:`.orthanc_client`). A job streams its instances one by one: a worker process downloads and anonymizes each
(:func:`fetch_and_anonymize`: the original's bytes never pass through Orthanc's Python), a job thread stores the
copy with ``POST /instances``, checks the stored MD5 where needed, and links it; only a small window of instances
is in flight at a time, and the job keeps IDs only. When the links are in this Orthanc's own file (not a cluster's
database) and Gateway mode is off, the worker stores, checks and links the instance itself (:class:`CopyTarget`, the
same steps in the same order) and the job thread links its series, study and patient: the copy's bytes then never
pass through Orthanc's Python either.
Every job is recorded as JSON under the state folder, kept after it ends, and each resource it handles appends
one record to the audit trail.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orthanc_anonymizer.audit import AuditTrail, anonymization_record
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.errors import LinkStoreError
from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.pipeline import Failure, InstanceFailure, InstanceTask
from orthanc_anonymizer.server.job_records import INTERRUPTED, Job, JobState, JobStore, ResourceResult
from orthanc_anonymizer.server.links import FROM_RESOURCE, PROFILE_METADATA, LinkIndex, LinkStore
from orthanc_anonymizer.server.orthanc_client import (
    LEVELS,
    OrthancClient,
    OrthancError,
    OrthancUnreachable,
    ResourceNotFound,
)
from orthanc_anonymizer.server.workers import (
    WORKER_STORES_FROM,
    CopyTarget,
    FetchedInstance,
    Pool,
    fetch_and_anonymize,
    store_copy,
)

logger = logging.getLogger("orthanc_anonymizer.jobs")

T = TypeVar("T")


def hold_at_files(directory: Path, stopping: threading.Event) -> Callable[[str, str], None]:
    """Test instrumentation (``ANONYMIZER_TEST_HOLD_DIRECTORY``), so that a test paces what must happen while a
    job runs (instances arriving, Orthanc killed) on conditions it observes, never on speed: at a point for which
    the test wrote ``hold-{point}`` in ``directory``, a job writes ``{job}.{point}`` and waits until the test
    writes ``{job}.{point}.go`` or removes ``hold-{point}``. Points: ``listed`` (a resource's instances listed),
    ``deleting-{n}`` (InPlace, before it deletes the ``n``-th original, from 0)."""

    def hold(job_id: str, point: str) -> None:
        asked = directory / f"hold-{point}"
        if not asked.exists():
            return
        (directory / f"{job_id}.{point}").touch()
        release = directory / f"{job_id}.{point}.go"
        while asked.exists() and not release.exists() and not stopping.wait(0.05):
            pass

    return hold


class _ParentCache:
    """Original series -> study -> patient IDs, looked up once per job."""

    def __init__(self, client: OrthancClient) -> None:
        self._client = client
        self._parent: dict[tuple[str, str], str] = {}
        self.linked: set[tuple[str, str]] = set()
        """Copies (segment, ID) above the instance level whose metadata this job has set already."""
        self.lock = threading.Lock()

    def parent(self, level: str, resource_id: str) -> str:
        key = (level, resource_id)
        with self.lock:
            known = self._parent.get(key)
        if known is None:
            field_name = {"series": "ParentStudy", "studies": "ParentPatient"}[level]
            known = str(self._client.get_json(f"/{level}/{resource_id}")[field_name])
            with self.lock:
                self._parent[key] = known
        return known

    def originals(self, instance: tuple[str, str]) -> dict[str, str]:
        instance_id, series = instance
        study = self.parent("series", series)
        return {
            "instances": instance_id,
            "series": series,
            "studies": study,
            "patients": self.parent("studies", study),
        }


_PIXEL_REGION_KEYS = ("Frame", "Left", "Top", "Width", "Height", "Source", "Rule")


def _pixel_regions(instance: str, regions: list[dict[str, object]]) -> list[dict[str, object]]:
    """Clean Pixel Data's boxes of one instance for a dry run's answer and the audit trail: the instance's ID, the
    frame (from 1; ``None`` for every frame), the box, and whether a rule (named) or OCR found it. Coordinates
    only: never a pixel, never the text read."""
    return [
        {"Instance": instance, **{key: region[key] for key in _PIXEL_REGION_KEYS if key in region}}
        for region in regions
    ]


class _ResourceRun:
    """The work and the outcome of one resource within a job."""

    def __init__(self, level: str, source: str, instances: list[tuple[str, str]]) -> None:
        self.level = level
        self.source = source
        self.instances = instances
        """(instance ID, its series' ID) of each original: IDs only, whatever the size of the study."""
        self.stored: list[str] = []
        self.copied: list[str] = []
        """The originals whose copies are stored, verified and linked: the only ones InPlace may delete."""
        self.new_ids: dict[str, set[str]] = {segment: set() for segment in LEVELS}
        self.failed: list[InstanceFailure] = []
        self.changes: list[dict[str, object]] = []
        self.pixel_regions: list[dict[str, object]] = []
        """The boxes Clean Pixel Data blacked out (would black out, on a dry run), with their instance's ID."""
        self.counts: dict[str, int] = {}
        self.residual_checked = 0
        self.residual_unknown = 0
        self.lock = threading.Lock()
        """Storer threads update the outcome concurrently."""
        self.interrupted = False
        """Orthanc stopped (or became unreachable) before every instance was handled."""

    def add_copy(self, source: str, new_ids: Mapping[str, str], pixel_regions: list[dict[str, object]]) -> None:
        """The copy of instance ``source`` is stored, verified and linked."""
        with self.lock:
            self.stored.append(new_ids["instances"])
            self.pixel_regions.extend(_pixel_regions(source, pixel_regions))
            self.copied.append(source)
            for segment, new_id in new_ids.items():
                self.new_ids[segment].add(new_id)


class _RegisteredWriter:
    """Gateway mode's writer for :func:`.workers.store_copy`: Orthanc's client, each copy registered by its MD5
    while it is stored (:meth:`JobManager.is_storing`)."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.client = manager.client

    def store_instance(self, data: bytes) -> dict[str, Any]:
        with self.manager._registered(hashlib.md5(data).hexdigest()):
            return self.client.store_instance(data)

    def stored_md5(self, instance_id: str) -> str:
        return self.client.stored_md5(instance_id)

    def put_metadata(self, level: str, resource_id: str, name: str, value: str) -> None:
        self.client.put_metadata(level, resource_id, name, value)


class JobManager:
    """Queues jobs and runs ``concurrent_jobs`` of them at a time on its own threads.

    A job's runner thread hands its instances to the worker processes, which download them; ``STORERS`` threads per
    job store the results (or, with ``workers_store``, only link the parents of the copies the workers stored), so
    Orthanc parses and writes one copy while the next is being anonymized. At most ``window`` instances of a job
    are in flight (downloaded and not yet stored) at any time.
    """

    STORERS = 2
    KEPT_IN_MEMORY = 100
    """Ended jobs kept in memory; older ones are answered from their records on disk."""

    def __init__(
        self,
        client: OrthancClient,
        pool: Pool,
        links: LinkStore,
        audit: AuditTrail,
        store: JobStore,
        hasher: KeyedHasher,
        concurrent_jobs: int = 2,
        window: int = 4,
        hold: Callable[[str, str], None] | None = None,
        *,
        register_stores: bool = False,
        workers_store: bool = False,
        worker_stores_from: int = WORKER_STORES_FROM,
        stopping: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.pool = pool
        self.links = links
        self.audit = audit
        self.store = store
        self.hasher = hasher
        self.window = max(1, window)
        self.hold = hold
        """Test instrumentation only (:func:`hold_at_files`): called with the job's ID at named points."""
        self.register_stores = register_stores
        """Gateway mode: register each copy's MD5 while it is stored (:meth:`is_storing`)."""
        self.workers_store = workers_store and isinstance(links, LinkIndex) and not register_stores
        """The workers store the copies of ``worker_stores_from`` bytes or more themselves (:class:`CopyTarget`).
        Only with the links in this Orthanc's own file, which they can write too, and not in Gateway mode, whose
        stores this process must see."""
        self.worker_stores_from = worker_stores_from
        self._storing: dict[str, int] = {}
        """MD5 -> how many copies with it are being stored now."""
        self._storers = ThreadPoolExecutor(concurrent_jobs * self.STORERS, thread_name_prefix="anonymizer-store")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self.stopping = stopping if stopping is not None else threading.Event()
        """Set by :meth:`shutdown` (given, when ``hold`` waits on it too)."""
        self._threads = [
            threading.Thread(target=self._run_forever, name=f"anonymizer-job-{n}", daemon=True)
            for n in range(concurrent_jobs)
        ]
        for thread in self._threads:
            thread.start()

    # -- public API ---------------------------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
        self._save(job)
        self._queue.put(job)
        return job

    def record(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.record()
        return self.store.load(job_id)

    def is_storing(self, data: bytes) -> bool:
        """Whether ``data`` are the exact bytes of a copy this manager is storing right now: how Gateway mode knows
        the plugin's own copies when Orthanc hands them to its received-instance callback (an outsider cannot make
        other bytes with the same MD5 of a copy it has not seen)."""
        digest = hashlib.md5(data).hexdigest()
        with self._lock:
            return digest in self._storing

    @contextlib.contextmanager
    def _registered(self, digest: str) -> Iterator[None]:
        with self._lock:
            self._storing[digest] = self._storing.get(digest, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._storing[digest] -= 1
                if not self._storing[digest]:
                    del self._storing[digest]

    def shutdown(self, timeout: float = 3.0) -> None:
        """Orthanc is stopping: running jobs stop after the instances in flight, queued ones do not start; both end
        as failures saying so (their copies so far stay stored, linked and audited). Orthanc waits for this."""
        self.stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._storers.shutdown(wait=False, cancel_futures=True)

    # -- running ------------------------------------------------------------------------------------------------

    def _save(self, job: Job) -> None:
        with self._lock:
            record = job.record()
        try:
            self.store.save(record)
        except OSError as error:  # a full disk: the job goes on (and fails, saying so); its runner thread too
            problem = f"job record not written: {exception_summary(error)}"
            if problem not in job.errors:
                logger.error("job %s: %s", job.id, problem)
                job.errors.append(problem)

    def _run_forever(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self.client.close()
                return
            if self.stopping.is_set():
                job.errors.append(INTERRUPTED)
                self._finish(job, JobState.FAILURE)
                continue
            try:
                self.run(job)
            except Exception as error:  # a bug must not kill the runner thread
                logger.error("job %s: %s", job.id, exception_summary(error))
                job.errors.append(f"internal error: {exception_summary(error)}")
                self._finish(job, JobState.FAILURE)

    def _finish(self, job: Job, state: JobState) -> None:
        with self._lock:
            job.state = state
            job.finished = time.time()
            if state is JobState.SUCCESS:
                job.progress = 100
        self._save(job)
        job.done.set()
        with self._lock:
            ended = [key for key, known in self._jobs.items() if known.done.is_set()]
            for key in ended[: max(0, len(ended) - self.KEPT_IN_MEMORY)]:
                del self._jobs[key]

    def run(self, job: Job) -> None:
        """Run ``job`` to its end in this thread."""
        with self._lock:
            job.state, job.started = JobState.RUNNING, time.time()
        self._save(job)
        # Count first (for the progress), list each resource's instances only when its turn comes: a batch of many
        # large studies never has more than one study's instance list in memory.
        counts: list[tuple[str, int | None]] = []
        for resource in job.resources:
            if job.level == "instances":
                counts.append((resource, 1))  # listing it below is the existence check: one request, not two
                continue
            try:
                counts.append((resource, self.client.count_instances(job.level, resource)))
            except OrthancUnreachable:
                job.errors.append(INTERRUPTED)
                self._finish(job, JobState.FAILURE)
                return
            except OrthancError as error:
                counts.append((resource, None))
                reason = "unknown resource" if isinstance(error, ResourceNotFound) else str(error)
                job.errors.append(f"{job.level}/{resource}: {reason}")
        total = sum(count or 0 for _, count in counts)
        task = InstanceTask(settings=job.settings.engine_settings(self.hasher), dry_run=job.settings.dry_run)
        # Compile the profile's action table once, here: it travels to the workers with every instance (a few KB)
        # instead of being compiled again in the worker for each one (~5 ms).
        _ = task.settings.profile.action_table
        parents = _ParentCache(self.client)
        done = 0
        # At instance level each resource is one instance: they share one pipeline (a batch of single instances,
        # as on-ingest anonymization submits, keeps every worker busy) and are concluded once it is drained.
        shared: deque[Future[None]] | None = deque() if job.level == "instances" else None
        slots: list[ResourceResult | _ResourceRun] = []

        def advance() -> None:
            nonlocal done
            done += 1
            with self._lock:
                job.progress = min(99, int(100 * done / total)) if total else 99
            if done % 25 == 0:
                self._save(job)

        interrupted = False
        for resource, count in counts:
            if self.stopping.is_set():
                job.errors.append(INTERRUPTED)
                break
            result: ResourceResult
            try:
                if count is None:
                    raise ResourceNotFound("GET", f"/{job.level}/{resource}", 404)
                instances = self.client.instance_ids(job.level, resource)
                self._hold(job, "listed")
            except OrthancError as error:
                reason = "unknown resource" if isinstance(error, ResourceNotFound) else str(error)
                if isinstance(error, ResourceNotFound):
                    job.not_found.add(resource)
                if count is not None:
                    job.errors.append(f"{job.level}/{resource}: {reason}")
                result = ResourceResult(source=resource, level=LEVELS[job.level], error=reason)
            else:
                run = _ResourceRun(job.level, resource, instances)
                self._anonymize_resource(job, run, task, parents, advance, shared)
                if shared is not None:
                    slots.append(run)
                    if run.interrupted:
                        break
                    continue
                concluded = self._conclude(job, run)
                self._audit(job, [concluded])
                result = concluded[0]
                interrupted = run.interrupted
            if shared is not None:
                slots.append(result)
                continue
            with self._lock:
                job.results.append(result)
            self._save(job)
            if interrupted:
                job.errors.append(INTERRUPTED)
                break
        if shared is not None:
            while shared:
                shared.popleft().result()
                advance()
            results: list[ResourceResult] = []
            concluded_runs: list[tuple[ResourceResult, dict[str, Any]]] = []
            for slot in slots:
                if isinstance(slot, _ResourceRun):
                    interrupted = interrupted or slot.interrupted
                    concluded_runs.append(self._conclude(job, slot))
                    slot = concluded_runs[-1][0]
                results.append(slot)
            self._audit(job, concluded_runs)
            with self._lock:
                job.results.extend(results)
            self._save(job)
            if interrupted:
                job.errors.append(INTERRUPTED)
        failed = bool(job.errors) or any(result.failed_any for result in job.results)
        self._finish(job, JobState.FAILURE if failed else JobState.SUCCESS)
        logger.info(
            "job %s (%s, %d resources, %d instances) ended: %s", job.id, job.level, len(counts), total, job.state
        )

    def _anonymize_resource(
        self,
        job: Job,
        run: _ResourceRun,
        task: InstanceTask,
        parents: _ParentCache,
        advance: Callable[[], None],
        shared: deque[Future[None]] | None = None,
    ) -> None:
        """Stream the instances: download and anonymize in a worker, store on a storer thread. With ``shared``
        (a pipeline several resources feed), the instances still in flight are left in it for the caller."""
        pending: deque[Future[None]] = deque() if shared is None else shared
        source = self.client.endpoint()
        target = None
        if self.workers_store and not job.settings.dry_run:
            assert isinstance(self.links, LinkIndex)
            target = CopyTarget(
                str(self.links.path), job.settings.description_json, job.settings.in_place, self.worker_stores_from
            )
        for instance in run.instances:
            if self.stopping.is_set() or run.interrupted:
                run.interrupted = True  # the result shows fewer instances; InPlace keeps the original
                break
            anonymized = self.pool.call(fetch_and_anonymize, source, instance[0], task, target)
            pending.append(self._storers.submit(self._complete, job, run, instance, anonymized, parents))
            while len(pending) >= self.window:
                pending.popleft().result()
                advance()
        while pending and shared is None:
            pending.popleft().result()
            advance()

    def _complete(
        self,
        job: Job,
        run: _ResourceRun,
        instance: tuple[str, str],
        future: Future[FetchedInstance],
        parents: _ParentCache,
    ) -> None:
        """Store one anonymized instance, check it, link it. Never raises: failures go to ``run.failed``."""
        try:
            failure = self._store(job, run, instance, future, parents)
        except Exception as error:  # a bug must not lose the instance silently
            failure = InstanceFailure(instance[0], f"internal error: {exception_summary(error)}")
        if failure is not None:
            with run.lock:
                run.failed.append(failure)

    def _store(
        self,
        job: Job,
        run: _ResourceRun,
        instance: tuple[str, str],
        future: Future[FetchedInstance],
        parents: _ParentCache,
    ) -> InstanceFailure | None:
        """The work of :meth:`_complete`; returns why the instance failed, or ``None``."""
        source_id = instance[0]
        try:
            fetched = future.result()
        except Exception as error:  # the worker process died
            return InstanceFailure(source_id, f"worker failed: {exception_summary(error)}")
        if fetched.outcome is None:
            if fetched.unreachable:
                run.interrupted = True  # Orthanc is stopping: the job ends interrupted, InPlace keeps the original
            return InstanceFailure(source_id, f"cannot read the original: {fetched.read_error}")
        outcome = fetched.outcome
        if outcome.error is not None:
            return InstanceFailure(source_id, outcome.reason, outcome.failure)
        with run.lock:
            for action, count in outcome.counts.items():
                run.counts[action] = run.counts.get(action, 0) + count
            if job.settings.dry_run:
                run.changes.extend({"Instance": instance[0], **change} for change in outcome.changes)
                run.pixel_regions.extend(_pixel_regions(instance[0], outcome.pixel_regions))
                return None
            if outcome.residual_clean is None:
                run.residual_unknown += 1
            else:
                run.residual_checked += 1
        if outcome.failure is Failure.RESIDUAL_PHI:
            return InstanceFailure(source_id, f"{outcome.reason}; copy not stored", outcome.failure)
        if fetched.copy_ids is None and fetched.store_error is None:
            # The worker left the store to this thread (Gateway mode, a cluster's links, a small copy): the same
            # steps in the same order.
            writer = _RegisteredWriter(self) if self.register_stores else self.client
            fetched = store_copy(
                writer, self.links, source_id, outcome, job.settings.description_json, job.settings.in_place
            )
        if fetched.store_error is not None:
            if fetched.unreachable:
                run.interrupted = True  # Orthanc is stopping: not a verdict on this instance
            return InstanceFailure(source_id, fetched.store_error)
        assert fetched.copy_ids is not None
        new_ids = fetched.copy_ids
        try:
            self._link_parents(job, parents.originals(instance), new_ids, parents)
        except (OSError, LinkStoreError) as error:  # the state folder's disk is full, the database is gone
            return InstanceFailure(source_id, self._remove_unlinked(new_ids["instances"], error))
        except OrthancUnreachable as error:
            run.interrupted = True  # Orthanc is stopping: not a verdict on this instance
            return InstanceFailure(source_id, f"cannot store the copy: {error}")
        except OrthancError as error:
            return InstanceFailure(source_id, f"cannot store the copy: {error}")
        run.add_copy(source_id, new_ids, outcome.pixel_regions)
        return None

    def _remove_unlinked(self, copy: str, error: Exception) -> str:
        """A copy stored but not linked is deleted again: a failed instance leaves no copy behind."""
        try:
            self.client.delete("instances", copy)
        except OrthancError:
            return f"cannot link the copy, nor delete it (instance {copy}): {exception_summary(error)}"
        return f"cannot link the copy (deleted): {exception_summary(error)}"

    def _link_parents(
        self, job: Job, originals: Mapping[str, str], new_ids: Mapping[str, str], parents: _ParentCache
    ) -> None:
        """Metadata on the copy's series, study and patient (once per job each) and their rows in the reverse index
        (one transaction); the instance itself was linked by :func:`.workers.store_copy`."""
        profile_json = job.settings.description_json
        rows: list[tuple[str, str, str]] = []
        for segment in ("series", "studies", "patients"):
            copy, source = new_ids[segment], originals[segment]
            if copy == source:
                continue
            with parents.lock:
                if (segment, copy) in parents.linked:
                    continue
                parents.linked.add((segment, copy))
            self.client.put_metadata(segment, copy, FROM_RESOURCE, source)
            self.client.put_metadata(segment, copy, PROFILE_METADATA, profile_json)
            rows.append((LEVELS[segment], source, copy))
        self.links.add_many(rows)

    def _conclude(self, job: Job, run: _ResourceRun) -> tuple[ResourceResult, dict[str, Any]]:
        """Delete the original if asked and safe; the resource's result and its audit record (for :meth:`_audit`)."""
        level_name = LEVELS[run.level]
        result = ResourceResult(
            source=run.source, level=level_name, failed=list(run.failed), dry_run=job.settings.dry_run
        )
        removal = _Removal()
        if job.settings.dry_run:
            result.instances, result.changes, result.pixel_regions = len(run.instances), run.changes, run.pixel_regions
        else:
            result.resources, result.instances = sorted(run.new_ids[run.level]), len(run.stored)
            # A copy missing instances (failed, interrupted) is still in Orthanc, linked: this says it is partial.
            result.complete = bool(run.stored) and len(run.stored) == len(run.instances)
            if job.settings.in_place:
                removal = self._delete_originals(job, run, result.resources)
                result.originals = removal.fields()
        record = anonymization_record(
            dry_run=job.settings.dry_run,
            user=job.user,
            job=job.id,
            level=level_name,
            source=run.source,
            result=None if job.settings.dry_run else result.resource,
            source_instances=len(run.instances),
            instances=len(run.stored),
            complete=None if job.settings.dry_run else result.complete,
            failed=run.failed,
            settings=job.settings.description,
            in_place=job.settings.in_place,
            deleted_original=removal.deleted_all,
            originals=removal.fields(audit=True) if job.settings.in_place else None,
            counts=run.counts,
            residual_checked=run.residual_checked,
            residual_not_checked=run.residual_unknown,
            pixel_regions=run.pixel_regions,
        )
        return result, record

    def _audit(self, job: Job, concluded: list[tuple[ResourceResult, dict[str, Any]]]) -> None:
        """Append the audit records of concluded resources (one disk round or transaction for all of them) and
        put each one's ``Audit`` sequence number in its result."""
        try:
            appended = self.audit.append_many([record for _, record in concluded])
        except Exception as error:  # the copies exist; say loudly that their audit records do not
            logger.error("job %s: %d audit record(s) not written: %s", job.id, len(concluded), exception_summary(error))
            job.errors.append(f"audit record not written: {exception_summary(error)}")
            appended = [{} for _ in concluded]
        for (result, _), stored in zip(concluded, appended, strict=True):
            result.audit = stored.get("Sequence")

    def _delete_originals(self, job: Job, run: _ResourceRun, new_resources: Iterable[str]) -> _Removal:
        """InPlace: delete, one by one, the original instances whose copies are stored and verified.

        Never the resource as a whole: it may have grown since the job listed it (a modality still sending), and
        what arrived since has no copy. Every original is kept when an instance of the resource failed."""
        removal = _Removal(listed=len(run.instances))
        if run.failed or len(run.stored) != len(run.instances):
            job.errors.append(
                f"{run.level}/{run.source}: original kept (InPlace): {len(run.stored)} of {len(run.instances)} "
                "instances stored"
            )
            removal.keep(len(run.instances), KEPT_NOT_ALL_COPIED)
            return removal
        if run.source in new_resources:
            job.errors.append(f"{run.level}/{run.source}: original kept (InPlace): the copy has the same Orthanc ID")
            removal.keep(len(run.instances), KEPT_SAME_ID)
            return removal
        for number, original in enumerate(list(run.copied)):
            self._hold(job, f"deleting-{number}")
            try:
                self.client.delete("instances", original)
            except ResourceNotFound:
                removal.deleted += 1  # deleted by someone else meanwhile: gone, and its copy is stored
            except OrthancError as error:
                removal.keep(1, KEPT_NOT_DELETED)
                message = f"{run.level}/{run.source}: original not deleted: {error}"
                if message not in job.errors:
                    job.errors.append(message)
            else:
                removal.deleted += 1
        if run.level != "instances":
            try:
                arrived = self.client.count_instances(run.level, run.source)
            except ResourceNotFound:
                arrived = 0
            except OrthancError as error:
                job.errors.append(f"{run.level}/{run.source}: cannot count what is left of the original: {error}")
                arrived = 0
            removal.keep(arrived - removal.kept_for(KEPT_NOT_DELETED), KEPT_ARRIVED)
        return removal

    def _hold(self, job: Job, point: str) -> None:
        if self.hold is not None:
            self.hold(job.id, point)


KEPT_NOT_ALL_COPIED = "not every instance of the resource was copied: the original is kept whole"
KEPT_SAME_ID = "the copy has the original's Orthanc ID"
KEPT_NOT_DELETED = "Orthanc refused to delete them"
KEPT_ARRIVED = "arrived after the job listed the resource: this job made no copy of them"


@dataclass
class _Removal:
    """What InPlace did with the originals of one resource: how many instances it deleted, kept, and why."""

    listed: int = 0
    deleted: int = 0
    kept: dict[str, int] = field(default_factory=dict)

    def keep(self, count: int, reason: str) -> None:
        if count > 0:
            self.kept[reason] = self.kept.get(reason, 0) + count

    def kept_for(self, reason: str) -> int:
        return self.kept.get(reason, 0)

    @property
    def deleted_all(self) -> bool:
        """Every original instance is gone (so is the resource): none kept for any reason."""
        return self.listed > 0 and self.deleted == self.listed and not self.kept

    def fields(self, audit: bool = False) -> dict[str, Any]:
        """The result's (or the audit record's) account of the originals. No values: counts and fixed texts."""
        fields: dict[str, Any] = {
            "OriginalsDeleted": self.deleted,
            "OriginalsKept": sum(self.kept.values()),
            "OriginalsKeptBecause": [{"Instances": count, "Reason": why} for why, count in sorted(self.kept.items())],
        }
        if not audit:
            fields = {"Deleted": self.deleted_all, **fields}
        return fields
