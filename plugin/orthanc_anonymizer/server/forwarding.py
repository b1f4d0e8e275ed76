"""Forwarding: an anonymized study, once stable, sent to a DICOM modality or an Orthanc peer, retried with back-off.

The ingest loop sees Orthanc's ``StableStudy`` changes and hands the study here; this module's own thread checks
that the study is an anonymizer output (its ``AnonymizedFromResource`` link, or in Gateway mode its instances'
markers) and, for each destination of ``ForwardTo``, asks Orthanc to send it (``POST /modalities/{name}/store`` or
``POST /peers/{name}/store``, as an asynchronous Orthanc job it then follows). A failed attempt is retried after
``2, 4, 8 ...`` seconds (at most :attr:`Forwarder.MAX_DELAY`), up to :attr:`Forwarder.MAX_ATTEMPTS` attempts; a
forward that a stop of Orthanc cut short starts again, as a new job, when the plugin next starts.
Each forward is a job record (``"Type": "Forward"``) readable at ``GET /anonymizer/jobs/{id}``, and its end is an
audit record (``"Event": "forward"``). Everything goes through loopback HTTP, never on Orthanc's threads.
"""

from __future__ import annotations

import heapq
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from orthanc_anonymizer.audit import AuditTrail
from orthanc_anonymizer.deid.deidentification_method import claims_engine_output
from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.server.job_records import INTERRUPTED, JobState, JobStore, timestamp
from orthanc_anonymizer.server.links import FROM_RESOURCE
from orthanc_anonymizer.server.orthanc_client import OrthancClient, OrthancError

logger = logging.getLogger("orthanc_anonymizer.forwarding")


@dataclass
class ForwardJob:
    """One study to one destination, and how it went. :meth:`record` is its JSON form."""

    study: str
    destination: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: JobState = JobState.PENDING
    progress: int = 0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    orthanc_job: str | None = None
    next_attempt: float = 0.0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def record(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Type": "Forward",
            "Level": "Study",
            "Resources": [self.study],
            "Destination": self.destination,
            "User": "auto",
            "State": self.state,
            "Progress": self.progress,
            "Attempts": self.attempts,
            "OrthancJob": self.orthanc_job,
            "NextAttempt": timestamp(self.next_attempt) if self.state is JobState.PENDING and self.attempts else None,
            "Results": [{"Source": self.study, "Destination": self.destination}]
            if self.state is JobState.SUCCESS
            else [],
            "Errors": list(self.errors),
            "CreationTime": timestamp(self.created),
            "StartTime": timestamp(self.started),
            "CompletionTime": timestamp(self.finished),
        }


class Forwarder:
    """Sends stable anonymized studies to the ``ForwardTo`` destinations, on its own thread."""

    MAX_ATTEMPTS = 10
    FIRST_DELAY = 2.0
    MAX_DELAY = 300.0
    POLL = 0.5
    """How often a running Orthanc store job is looked at."""

    def __init__(
        self,
        client: OrthancClient,
        store: JobStore,
        audit: AuditTrail,
        destinations: tuple[str, ...],
        gateway: bool = False,
    ) -> None:
        self.client = client
        self.store = store
        self.audit = audit
        self.destinations = destinations
        self.gateway = gateway
        self.stopping = threading.Event()
        self._studies: queue.Queue[str | None] = queue.Queue()
        self._waiting: list[tuple[float, int, ForwardJob]] = []
        self._counter = 0
        self._active: set[tuple[str, str]] = set()
        self._thread = threading.Thread(target=self._run_forever, name="anonymizer-forward", daemon=True)

    def start(self) -> None:
        self._resume()
        self._thread.start()

    def _resume(self) -> None:
        """Forwards the last stop of Orthanc cut short (marked failed as interrupted at start-up) start again."""
        for path in sorted(self.store.directory.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (
                record.get("Type") != "Forward"
                or record.get("State") != JobState.FAILURE
                or INTERRUPTED not in record.get("Errors", [])
                or record.get("ResumedAs")
            ):
                continue
            study, destination = record["Resources"][0], str(record["Destination"])
            if destination not in self.destinations or (study, destination) in self._active:
                continue
            job = ForwardJob(study=study, destination=destination)
            record["ResumedAs"] = job.id
            self.store.save(record)
            self._active.add((study, destination))
            self.store.save(job.record())
            logger.warning("forward job %s: study %s to %s (resuming job %s)", job.id, study, destination, record["ID"])
            self._schedule(job, time.time())

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        self._studies.put(None)
        self._thread.join(timeout)

    def study_stable(self, study: str) -> None:
        """Called by the ingest loop for every ``StableStudy`` change; returns at once."""
        self._studies.put(study)

    # -- the thread ---------------------------------------------------------------------------------------------

    def _run_forever(self) -> None:
        while not self.stopping.is_set():
            timeout = max(0.0, self._waiting[0][0] - time.time()) if self._waiting else None
            try:
                study = self._studies.get(timeout=timeout)
            except queue.Empty:
                study = None
            else:
                if study is None:
                    break
                try:
                    self._consider(study)
                except Exception as error:  # Orthanc stopping, or the study deleted: nothing to forward now
                    logger.warning("forward: study %s not considered: %s", study, exception_summary(error))
            while self._waiting and self._waiting[0][0] <= time.time() and not self.stopping.is_set():
                _, _, job = heapq.heappop(self._waiting)
                self._attempt(job)
        self.client.close()

    def _consider(self, study: str) -> None:
        if not self._is_anonymized(study):
            return
        for destination in self.destinations:
            if (study, destination) in self._active:
                continue  # stable again while a forward of it waits: that one sends the whole study
            job = ForwardJob(study=study, destination=destination)
            self._active.add((study, destination))
            self.store.save(job.record())
            # Orthanc shows warnings by default and infos only with --verbose: this is how an administrator finds
            # the job to follow at GET /anonymizer/jobs/{id}.
            logger.warning("forward job %s: study %s to %s", job.id, study, destination)
            self._schedule(job, time.time())

    def _is_anonymized(self, study: str) -> bool:
        if self.client.get_metadata("studies", study, FROM_RESOURCE) is not None:
            return True
        if not self.gateway:
            return False
        instances = self.client.get_json(f"/studies/{study}/instances")
        if not instances:
            return False
        tags = self.client.get_json(f"/instances/{instances[0]['ID']}/simplified-tags")
        return claims_engine_output(tags)

    def _schedule(self, job: ForwardJob, moment: float) -> None:
        job.next_attempt = moment
        self._counter += 1
        heapq.heappush(self._waiting, (moment, self._counter, job))

    def _attempt(self, job: ForwardJob) -> None:
        job.attempts += 1
        job.state = JobState.RUNNING
        job.started = job.started or time.time()
        self.store.save(job.record())
        try:
            error = self._send(job)
        except OrthancError as failure:
            error = str(failure)
        except Exception as failure:  # a bug must not stop the other forwards
            error = f"internal error: {exception_summary(failure)}"
        if error is None:
            job.state, job.progress, job.finished = JobState.SUCCESS, 100, time.time()
            self._end(job)
            return
        job.errors.append(f"attempt {job.attempts}: {error}")
        if job.attempts >= self.MAX_ATTEMPTS or self.stopping.is_set():
            job.state, job.finished = JobState.FAILURE, time.time()
            self._end(job)
            return
        job.state = JobState.PENDING
        delay = min(self.MAX_DELAY, self.FIRST_DELAY * 2 ** (job.attempts - 1))
        self._schedule(job, time.time() + delay)
        self.store.save(job.record())
        logger.warning("forward job %s: attempt %d failed, next in %.0f s", job.id, job.attempts, delay)

    def _send(self, job: ForwardJob) -> str | None:
        """One attempt; returns why it failed, or ``None``."""
        if job.destination in self.client.get_json("/modalities"):
            path = f"/modalities/{job.destination}/store"
        elif job.destination in self.client.get_json("/peers"):
            path = f"/peers/{job.destination}/store"
        else:
            return f"{job.destination} is neither a DICOM modality nor an Orthanc peer of this Orthanc"
        answer = self.client.post_json(path, {"Resources": [job.study], "Asynchronous": True})
        job.orthanc_job = str(answer["ID"])
        self.store.save(job.record())
        while not self.stopping.is_set():
            state = self.client.get_json(f"/jobs/{job.orthanc_job}")
            job.progress = min(99, int(state.get("Progress", 0)))
            if state.get("State") == "Success":
                return None
            if state.get("State") == "Failure":
                detail = state.get("ErrorDetails") or state.get("ErrorDescription") or "failed"
                return f"Orthanc job {job.orthanc_job}: {detail}"
            self.stopping.wait(self.POLL)
        return "the plugin stopped"

    def _end(self, job: ForwardJob) -> None:
        self._active.discard((job.study, job.destination))
        self.store.save(job.record())
        try:
            self.audit.append(
                {
                    "Event": "forward",
                    "User": "auto",
                    "Job": job.id,
                    "Level": "Study",
                    "Source": job.study,
                    "Destination": job.destination,
                    "State": job.state,
                    "Attempts": job.attempts,
                    "Errors": job.errors,
                }
            )
        except Exception as error:
            logger.error("forward job %s: audit record not written: %s", job.id, exception_summary(error))
        logger.warning("forward job %s ended: %s after %d attempts", job.id, job.state, job.attempts)
