"""Worker processes that run the pipeline (:func:`.pipeline.anonymize_instance`): bytes of one instance in, bytes
and a value-free summary out.

The engine is CPU work; run inside Orthanc's process it would hold the GIL and stall every other Python callback.
Workers are started with the ``spawn`` method: inside Orthanc ``sys.executable`` is the Orthanc binary and ``fork``
would copy the whole server, so the pool names a Python interpreter explicitly. Workers never import ``orthanc``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from orthanc_anonymizer.errors import LinkStoreError
from orthanc_anonymizer.logs import exception_summary, route_warnings_to_logging
from orthanc_anonymizer.pipeline import InstanceOutcome, InstanceTask, anonymize_instance
from orthanc_anonymizer.server.links import FROM_RESOURCE, PROFILE_METADATA, LinkIndex, LinkStore
from orthanc_anonymizer.server.orthanc_client import OrthancClient, OrthancError, OrthancUnreachable

logger = logging.getLogger("orthanc_anonymizer.workers")
WORKER_NICENESS = 5
T = TypeVar("T")


class Pool(Protocol):
    """What runs a module-level function in a worker process: :class:`WorkerPool` (in tests, threads)."""

    def call(self, function: Callable[..., T], *args: Any) -> Future[T]: ...


class InstanceReader(Protocol):
    """Where a worker reads originals from: an :class:`OrthancClient` (made in the worker from its endpoint)."""

    def instance_file(self, instance_id: str) -> bytes: ...


@runtime_checkable
class CopyWriter(Protocol):
    """Where :func:`store_copy` stores a copy: an :class:`OrthancClient` (in Gateway mode, one that registers each
    store)."""

    def store_instance(self, data: bytes) -> dict[str, Any]: ...

    def stored_md5(self, instance_id: str) -> str: ...

    def put_metadata(self, level: str, resource_id: str, name: str, value: str) -> None: ...


@dataclass(frozen=True)
class CopyTarget:
    """A worker stores the copy it made itself (Copy mode, links in this Orthanc's own file): the copy's bytes then
    go from the worker straight to Orthanc, not through a pipe and Orthanc's Python (~3 ms of Orthanc's CPU a CT
    image). The order is the job thread's: the instance's link, the store, the MD5 check, the instance's metadata."""

    links: str
    """The links index file (:class:`.links.LinkIndex`): the copy's link is written there before it is stored."""
    profile_json: str
    """The value of the copy's ``AnonymizationProfile`` metadata."""
    verify_md5: bool
    """Compare the stored file's MD5 with the copy's whatever Orthanc answered (InPlace deletes originals)."""
    smallest: int = 0
    """Copies of fewer bytes go back to the job's thread to be stored (:data:`WORKER_STORES_FROM`)."""


WORKER_STORES_FROM = 64 * 1024
"""The size from which a worker stores its copy itself. A small copy costs little to send to the job's thread, and
there its storer threads overlap the requests while the worker anonymizes the next instance: after a storescu burst
of 1,000 small instances the last copy came 1.29 and 1.33x the idle time with the workers storing everything, 1.14
and 1.21x with the job's thread storing (two alternated rounds of ``bench.run --cases storescu``, 5 repeats each).
A 526 KB CT image costs ~2 ms of Orthanc's CPU on the way through the job's thread."""


OTHER_BYTES_KEPT = "Orthanc kept other bytes for this SOPInstanceUID (OverwriteInstances is off?)"
PARENT_LEVELS = (("series", "ParentSeries"), ("studies", "ParentStudy"), ("patients", "ParentPatient"))


@dataclass
class FetchedInstance:
    """What :func:`fetch_and_anonymize` returns: the engine's outcome, or why the original could not be read; with a
    :class:`CopyTarget`, the stored copy's IDs (the outcome then carries no bytes) or why it was not stored."""

    outcome: InstanceOutcome | None = None
    read_error: str | None = None
    unreachable: bool = False
    """Orthanc refused the connection (it is stopping): not a verdict on this instance."""
    copy_ids: dict[str, str] | None = None
    """The copy the worker stored, verified and linked at instance level: its Orthanc ID per level (``instances``,
    ``series``, ``studies``, ``patients``)."""
    store_error: str | None = None
    """Why the worker did not store or link the copy it made (with ``unreachable`` when Orthanc is stopping)."""


_worker_clients: dict[str, OrthancClient] = {}
"""In a worker process: one loopback client (one kept-alive connection) per endpoint."""
_worker_links: dict[str, LinkIndex] = {}
"""In a worker process: the links index files it has opened."""


def fetch_and_anonymize(
    source: Mapping[str, Any] | InstanceReader,
    instance_id: str,
    task: InstanceTask,
    target: CopyTarget | None = None,
) -> FetchedInstance:
    """In a worker process: download one original and anonymize it. Never raises.

    Downloading here rather than in Orthanc's process keeps the file off Orthanc's Python: reading 530 KB from a
    socket and pickling it to a worker took ~1 ms of the GIL per CT image there (a quarter of the plugin's Python
    time inside Orthanc, py-spy). ``source`` is :meth:`OrthancClient.endpoint` (or, in tests, a reader).
    """
    if isinstance(source, Mapping):
        key = json.dumps(source, sort_keys=True)
        reader: InstanceReader | None = _worker_clients.get(key)
        if reader is None:
            reader = _worker_clients[key] = OrthancClient.from_endpoint(source)
    else:
        reader = source
    try:
        data = reader.instance_file(instance_id)
    except OrthancUnreachable as error:
        return FetchedInstance(read_error=str(error), unreachable=True)
    except OrthancError as error:
        return FetchedInstance(read_error=str(error))
    except Exception as error:
        return FetchedInstance(read_error=exception_summary(error))
    outcome = anonymize_instance(data, task)
    if target is None or outcome.parts is None or outcome.orthanc_id is None:
        return FetchedInstance(outcome=outcome)
    if outcome.failure is not None:
        outcome.parts = None  # residual PHI: the job's thread fails the instance, without its bytes
        return FetchedInstance(outcome=outcome)
    if sum(len(part) for part in outcome.parts) < target.smallest:
        return FetchedInstance(outcome=outcome)  # the job's thread stores it
    assert isinstance(reader, CopyWriter), "a worker that stores its copy reads through an OrthancClient"
    links = _worker_links.get(target.links)
    try:
        if links is None:
            links = _worker_links[target.links] = LinkIndex(Path(target.links))
    except (OSError, sqlite3.Error) as error:
        return FetchedInstance(
            outcome=outcome, store_error=f"cannot link the copy (not stored): {exception_summary(error)}"
        )
    return store_copy(reader, links, instance_id, outcome, target.profile_json, target.verify_md5)


def store_copy(
    writer: CopyWriter,
    links: LinkStore,
    instance_id: str,
    outcome: InstanceOutcome,
    profile_json: str,
    verify_md5: bool,
) -> FetchedInstance:
    """Store the copy of ``instance_id`` that ``outcome`` holds, in a worker or in the job's thread: its link first
    (from the moment the copy is stored, the links index says it is a copy, on every node of a cluster, so on-ingest
    anonymization never takes it for an original), then ``POST /instances``, the MD5 check (``verify_md5``, InPlace:
    whatever Orthanc answered), the instance's metadata. Never raises; the outcome returned carries no bytes."""
    data, orthanc_id = outcome.data, outcome.orthanc_id
    assert data is not None and orthanc_id is not None
    outcome = replace(outcome, parts=None, _joined=None)  # the copy's bytes stay here
    try:
        links.add_many([("Instance", instance_id, orthanc_id)])
    except (OSError, LinkStoreError) as error:
        return FetchedInstance(
            outcome=outcome, store_error=f"cannot link the copy (not stored): {exception_summary(error)}"
        )
    try:
        stored = writer.store_instance(data)
        copy_ids = {"instances": str(stored["ID"])}
        copy_ids.update({segment: str(stored[key]) for segment, key in PARENT_LEVELS})
        # "Success" means Orthanc stored these bytes; anything else (AlreadyStored) may mean it kept others.
        checked = verify_md5 or stored.get("Status") != "Success"
        if checked and writer.stored_md5(copy_ids["instances"]) != hashlib.md5(data).hexdigest():
            return FetchedInstance(outcome=outcome, store_error=OTHER_BYTES_KEPT)
        if copy_ids["instances"] != instance_id:
            writer.put_metadata("instances", copy_ids["instances"], FROM_RESOURCE, instance_id)
            writer.put_metadata("instances", copy_ids["instances"], PROFILE_METADATA, profile_json)
    except OrthancUnreachable as error:
        return FetchedInstance(outcome=outcome, store_error=f"cannot store the copy: {error}", unreachable=True)
    except OrthancError as error:
        return FetchedInstance(outcome=outcome, store_error=f"cannot store the copy: {error}")
    except KeyError as error:
        return FetchedInstance(outcome=outcome, store_error=f"cannot store the copy: no {error} in Orthanc's answer")
    return FetchedInstance(outcome=outcome, copy_ids=copy_ids)


def _exit_with_parent(parent: int) -> None:
    # A worker holds both ends of its task pipe, so it never sees Orthanc die (SIGKILL, a crash): it would wait
    # forever. When its parent is gone it is re-parented; then it leaves.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _initialize_worker() -> None:
    """Runs once in each worker: leave with Orthanc; warnings (which may quote values) go to logging, stripped,
    then to stderr."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="exit-with-parent", daemon=True).start()
    # Below Orthanc's priority: when the cores are busy, storing what modalities send (and answering REST) comes
    # before anonymizing it (on-ingest anonymization must not slow ingest down).
    os.nice(WORKER_NICENESS)
    route_warnings_to_logging()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("anonymizer worker: %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("orthanc_anonymizer")
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


class WorkerPool:
    """A pool of engine processes. ``python`` is the interpreter to start them with."""

    def __init__(self, workers: int, python: str | None = None) -> None:
        self._context = multiprocessing.get_context("spawn")
        if python:
            # Global to multiprocessing's spawn module, which is what we want inside Orthanc.
            self._context.set_executable(python)
        self.workers = workers
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context, initializer=_initialize_worker)

    def submit(self, data: bytes, task: InstanceTask) -> Future[InstanceOutcome]:
        return self.call(anonymize_instance, data, task)

    def call(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """Run a module-level ``function(*args)`` in a worker process (both picklable)."""
        with self._lock:
            try:
                return self._executor.submit(function, *args)
            except BrokenProcessPool:
                # A worker died (the instances it held fail with the reason); later work gets fresh processes.
                logger.warning("a worker process died; starting new ones")
                self._executor = self._new_executor()
                return self._executor.submit(function, *args)

    def warm_up(self) -> None:
        """Start the processes now rather than at the first request."""
        with self._lock:
            futures = [self._executor.submit(_noop) for _ in range(self.workers)]
        for future in futures:
            future.result(timeout=120)

    def shutdown(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _noop() -> None:
    return None
