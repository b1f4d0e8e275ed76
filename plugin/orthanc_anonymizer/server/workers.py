"""Worker processes that run the engine: bytes of one instance in, bytes and a value-free summary out.

The engine is CPU work; run inside Orthanc's process it would hold the GIL and stall every other Python callback.
Workers are started with the ``spawn`` method: inside Orthanc ``sys.executable`` is the Orthanc binary and ``fork``
would copy the whole server, so the pool names a Python interpreter explicitly. Workers never import ``orthanc``.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_dataset, read_instance
from orthanc_anonymizer.deid.verify import IdentifyingValues
from orthanc_anonymizer.logs import exception_summary, route_warnings_to_logging

logger = logging.getLogger("orthanc_anonymizer.workers")
WORKER_NICENESS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class InstanceTask:
    """What a worker is asked to do with one instance."""

    settings: AnonymizationSettings
    dry_run: bool = False
    check_residual: bool = True


@dataclass
class InstanceOutcome:
    """What a worker returns for one instance. Holds no PHI unless the dry run asked for values."""

    data: bytes | None = None
    """The anonymized file (``None`` on a dry run or a failure)."""
    changes: list[dict[str, object]] = field(default_factory=list)
    """Change records (dry run only)."""
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pixel_regions: list[dict[str, object]] = field(default_factory=list)
    """The boxes Clean Pixel Data blacked out (:attr:`.pixels.PixelOutcome.regions`): coordinates, never pixels."""
    residual_clean: bool | None = None
    """The residual-PHI verdict (:mod:`.verify`); ``None`` when not checked."""
    residual_leaks: list[str] = field(default_factory=list)
    """Where residual PHI was found: tag paths only."""
    error: str | None = None
    """Why the instance failed (type and a value-free message)."""
    orthanc_id: str | None = None
    """The Orthanc ID the copy will have once stored (known before it is stored: see :func:`orthanc_instance_id`)."""

    @property
    def md5(self) -> str:
        """The MD5 of ``data`` (hex), as Orthanc computes it of a stored file. Computed when asked, by the job's
        thread (hashlib releases the GIL): most copies never need it, and it cost the worker ~1.4 ms a CT image."""
        return hashlib.md5(self.data).hexdigest() if self.data is not None else ""


def anonymize_instance(data: bytes, task: InstanceTask) -> InstanceOutcome:
    """Anonymize one DICOM file. Never raises: a failure comes back as ``error``."""
    try:
        # One parse, of the header only where the pixel data goes through untouched: the identities and the
        # identifying values (for the residual-PHI check) are read from the data set before the engine changes
        # it, and the check searches the output data set, not the bytes parsed again.
        instance = read_instance(data, task.settings.profile)
        dataset = instance.dataset
        original_identity = _identity(dataset)
        identifying = (
            IdentifyingValues.collect(dataset, task.settings.profile)
            if task.check_residual and not task.dry_run
            else None
        )
        report = anonymize_dataset(dataset, task.settings, record_changes=task.dry_run)
        parts = instance.output_parts()
        new_data = b"".join(parts)
        outcome = InstanceOutcome(
            counts=report.counts(), warnings=list(report.warnings), pixel_regions=list(report.pixel_regions)
        )
        if task.dry_run:
            outcome.changes = [change.as_json() for change in report.changes]
            return outcome
        identity = _identity(dataset)
        if identity == original_identity:
            # Orthanc would file the copy under the original's ID and replace the original with it.
            return InstanceOutcome(
                error="the copy keeps the original's PatientID and UIDs (RetainUIDs?) and would replace it in Orthanc; "
                "give another PatientID"
            )
        outcome.data = new_data
        outcome.orthanc_id = orthanc_instance_id(*identity)
        if identifying is not None:
            # After writing: the search converts the kept elements, which must be written as they were read.
            residual = identifying.search_written(dataset, parts)
            outcome.residual_clean = residual.clean
            outcome.residual_leaks = [leak.path for leak in residual.leaks]
        return outcome
    except Exception as error:  # reported per instance; the job goes on with the others
        return InstanceOutcome(error=exception_summary(error))


# PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID.
_IDENTITY_TAGS = (0x00100020, 0x0020000D, 0x0020000E, 0x00080018)


def orthanc_instance_id(patient_id: str, study: str, series: str, instance: str) -> str:
    """Orthanc's ID of an instance: SHA-1 of its identifiers, in five groups of eight hex digits."""
    digest = hashlib.sha1(f"{patient_id}|{study}|{series}|{instance}".encode()).hexdigest()
    return "-".join(digest[index : index + 8] for index in range(0, 40, 8))


def _identity(dataset: Dataset) -> tuple[str, ...]:
    """What Orthanc derives an instance's ID from (its patient, study, series and instance)."""
    return tuple(str(dataset[tag].value) if tag in dataset else "" for tag in _IDENTITY_TAGS)


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
