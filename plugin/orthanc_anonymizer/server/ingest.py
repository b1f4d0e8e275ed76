"""On-ingest anonymization: which arriving instances to anonymize, and how to do it exactly once.

The plugin follows Orthanc's change log (``GET /changes``) from a position persisted on disk, on its own thread,
through loopback HTTP, by polling: no on-change callback, so Orthanc's storage threads do no Python work. For
every ``NewInstance`` change it reads the instance's origin and a few tags, applies the :class:`IngestFilter`, and
hands the matching instances, a batch at a time, to the same job machinery as the REST routes. Only once a batch
is stored and linked does the position move past it, so a crash replays at most that batch: the keyed,
deterministic UIDs make the replayed copies the same instances (Orthanc keeps one), so nothing is lost and
nothing is doubled.

The plugin's own copies are recognised by provenance an outsider cannot forge: the links index, in which a job
writes each copy's instance link before it stores the copy (so the copy is known from the moment it is stored,
on every node of a cluster). Never by what a file says about itself: PatientIdentityRemoved ``YES`` and a
DeidentificationMethod naming this engine are attributes anyone can write, and a file that carries them but is no
known copy is anonymized like any other original.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orthanc_anonymizer.deid.profiles import Option
from orthanc_anonymizer.deid.uids import check_project
from orthanc_anonymizer.errors import AnonymizerError, ProfileError
from orthanc_anonymizer.pipeline import InstanceFailure
from orthanc_anonymizer.server.job_records import INTERRUPTED, Job, JobSettings
from orthanc_anonymizer.server.orthanc_client import ResourceNotFound

logger = logging.getLogger("orthanc_anonymizer.ingest")

ORIGIN_KEYS = {"CallingAET": "RemoteAET", "CalledAET": "CalledAET", "Origin": "Origin", "RemoteIP": "RemoteIP"}
"""Filter keys about where an instance came from -> the Orthanc metadata that holds them."""
MODES = ("Copy", "Gateway")
_AUTO_KEYS = {
    "Enabled",
    "Profile",
    "Options",
    "Project",
    "Filter",
    "DeleteOriginal",
    "ForwardTo",
    "Mode",
    "BatchSize",
    "QuietSeconds",
    "MaxDelaySeconds",
}


class IngestConfigurationError(AnonymizerError):
    """A setting of ``Anonymizer.AutoAnonymize`` is wrong; the message names it."""


def _name(key: str) -> str:
    return f"Anonymizer.AutoAnonymize.{key}"


@dataclass(frozen=True)
class IngestFilter:
    """Which instances to anonymize on arrival: every condition must hold (an empty filter matches all).

    Conditions on DICOM attributes are keyed by keyword (``Modality``, ``SOPClassUID``, ``StudyDescription``...);
    conditions on the origin by ``CallingAET``, ``CalledAET``, ``Origin`` (``DicomProtocol``, ``RestApi``,
    ``Plugin``...) and ``RemoteIP``. A condition is a pattern with ``*`` and ``?`` wildcards, or a list of them
    (any may match); matching ignores case and surrounding spaces. A condition on an absent value only matches
    the pattern ``""``.
    """

    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    origin: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: object) -> IngestFilter:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise IngestConfigurationError(f"{_name('Filter')}: expected an object of conditions")
        attributes: dict[str, tuple[str, ...]] = {}
        origin: dict[str, tuple[str, ...]] = {}
        from pydicom.datadict import tag_for_keyword

        for key, patterns in value.items():
            if isinstance(patterns, str):
                patterns = [patterns]
            if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
                raise IngestConfigurationError(f"{_name('Filter')}.{key}: expected a pattern or a list of patterns")
            normalised = tuple(item.strip().upper() for item in patterns)
            if key in ORIGIN_KEYS:
                origin[key] = normalised
            elif tag_for_keyword(key) is not None:
                attributes[key] = normalised
            else:
                known = ", ".join(sorted(ORIGIN_KEYS))
                raise IngestConfigurationError(
                    f"{_name('Filter')}.{key}: not a DICOM keyword nor an origin condition ({known})"
                )
        return cls(attributes=attributes, origin=origin)

    @property
    def needed_keywords(self) -> list[str]:
        return sorted(self.attributes)

    def matches(self, tags: Mapping[str, str], origin: Mapping[str, str]) -> bool:
        for keyword, patterns in self.attributes.items():
            if not _any_match(tags.get(keyword, ""), patterns):
                return False
        return all(_any_match(origin.get(ORIGIN_KEYS[key], ""), patterns) for key, patterns in self.origin.items())


def _any_match(value: str, patterns: Sequence[str]) -> bool:
    text = str(value).strip().upper()
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)


@dataclass(frozen=True)
class AutoAnonymizeConfig:
    """The checked ``"AutoAnonymize"`` settings."""

    enabled: bool = False
    profile: str = "basic"
    options: tuple[Option, ...] = ()
    filter: IngestFilter = field(default_factory=IngestFilter)
    delete_original: bool = False
    forward_to: tuple[str, ...] = ()
    mode: str = "Copy"
    batch_size: int = 256
    project: str = ""
    quiet_seconds: float = 0.3
    """Scanner first: on-ingest work starts once no original has arrived for this long (0: at once)."""
    max_delay_seconds: float = 30.0
    """Arrivals that never pause hold the work back at most this long; then the backlog is worked off."""

    @classmethod
    def parse(cls, section: Mapping[str, object]) -> AutoAnonymizeConfig:
        unknown = sorted(set(section) - _AUTO_KEYS)
        if unknown:
            raise IngestConfigurationError(
                f"{_name(unknown[0])}: unknown setting; known: {', '.join(sorted(_AUTO_KEYS))}"
            )
        enabled = section.get("Enabled", False)
        delete = section.get("DeleteOriginal", False)
        for key, value in (("Enabled", enabled), ("DeleteOriginal", delete)):
            if not isinstance(value, bool):
                raise IngestConfigurationError(f"{_name(key)}: expected true or false")
        profile = section.get("Profile", "basic")
        if not isinstance(profile, str) or not profile.strip():
            raise IngestConfigurationError(f"{_name('Profile')}: expected a profile name")
        raw_options = section.get("Options", [])
        if not isinstance(raw_options, list) or not all(isinstance(item, str) for item in raw_options):
            raise IngestConfigurationError(f"{_name('Options')}: expected a list of option names")
        try:
            options = tuple(Option.parse(item) for item in raw_options)
        except ProfileError as error:
            raise IngestConfigurationError(f"{_name('Options')}: {error}") from None
        forward = section.get("ForwardTo", [])
        if isinstance(forward, str):
            forward = [forward] if forward else []
        if not isinstance(forward, list) or not all(isinstance(item, str) and item for item in forward):
            raise IngestConfigurationError(f"{_name('ForwardTo')}: expected a modality or peer name, or a list")
        mode = section.get("Mode", "Copy")
        if mode not in MODES:
            raise IngestConfigurationError(f"{_name('Mode')}: expected one of {', '.join(MODES)}, got {mode!r}")
        if mode == "Gateway" and delete:
            raise IngestConfigurationError(
                f"{_name('DeleteOriginal')}: has no meaning in Gateway mode (the original is never stored)"
            )
        defaults = cls()
        batch = section.get("BatchSize", defaults.batch_size)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1000:
            raise IngestConfigurationError(f"{_name('BatchSize')}: expected a whole number from 1 to 1000")
        try:
            project = check_project(section.get("Project", ""))
        except ValueError as error:
            raise IngestConfigurationError(f"{_name('Project')}: {error}") from None
        quiet = _seconds(section, "QuietSeconds", defaults.quiet_seconds, 0.0, 60.0)
        max_delay = _seconds(section, "MaxDelaySeconds", defaults.max_delay_seconds, 0.1, 3600.0)
        assert isinstance(enabled, bool) and isinstance(delete, bool)
        return cls(
            enabled=enabled,
            profile=profile.strip(),
            options=options,
            filter=IngestFilter.parse(section.get("Filter")),
            delete_original=delete,
            forward_to=tuple(forward),
            mode=str(mode),
            batch_size=batch,
            project=project,
            quiet_seconds=quiet,
            max_delay_seconds=max_delay,
        )


def _seconds(section: Mapping[str, object], key: str, default: float, low: float, high: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise IngestConfigurationError(f"{_name(key)}: expected a number of seconds from {low:g} to {high:g}")
    return float(value)


class ChangeCursor:
    """The position in Orthanc's change log up to which every change is done, persisted atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int | None:
        """The saved position, or ``None`` before the first run."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise AnonymizerError(f"{self.path.name}: unreadable ingest position ({type(error).__name__})") from None
        value = data.get("Last") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AnonymizerError(f"{self.path.name}: unreadable ingest position")
        return value

    def save(self, position: int) -> None:
        """Write ``position`` so that a crash leaves either the old or the new value, never a torn file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".cursor-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump({"Last": position}, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class PositionStore(Protocol):
    """Where the position is kept: :class:`ChangeCursor` (a file), or the shared database of a cluster."""

    def load(self) -> int | None: ...

    def save(self, position: int) -> None: ...


class GapJudge(Protocol):
    """Whether a change number missing from the log will never appear (see :class:`~.cluster.ChangeLogGaps`)."""

    def settled(self, missing: int) -> bool: ...


class ChangeSource(Protocol):
    """What the loop needs of Orthanc (the glue passes the loopback REST client)."""

    def get_json(self, path: str) -> Any: ...


@dataclass
class BatchOutcome:
    """What became of one batch: how many instances were anonymized and which failed (IDs and reasons)."""

    anonymized: int = 0
    failed: list[InstanceFailure] = field(default_factory=list)


class IngestLoop:
    """Follows the change log and anonymizes matching new instances, a batch at a time, exactly once.

    ``run_batch`` anonymizes, stores, links and audits a list of instance IDs (the job machinery) and returns
    when all are done; it raises for a transient failure (Orthanc unreachable), and then the batch is retried
    without moving the position. ``on_stable_study`` is told about every study that became stable (forwarding).
    """

    LOOK_BACK = 1000
    """First run: how far back in the log to look for changes made since the plugin started."""
    CHECKS = 4
    """How many new instances are looked at (tags, origin) at the same time."""
    TICK = 0.05
    """Seconds between two looks at the log while waiting for arrivals to pause."""

    def __init__(
        self,
        source: ChangeSource,
        cursor: PositionStore,
        config: AutoAnonymizeConfig,
        run_batch: Callable[[list[str]], BatchOutcome],
        on_stable_study: Callable[[str], None] | None = None,
        page: int = 500,
        *,
        start_batch: Callable[[list[str]], Callable[[], BatchOutcome]] | None = None,
        in_flight: int = 1,
        own_outputs: set[str] | None = None,
        known_copy: Callable[[str], bool] | None = None,
        follow_new_instances: bool = True,
        started_at: str | None = None,
        gaps: GapJudge | None = None,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self.source = source
        self.cursor = cursor
        self.config = config
        self.run_batch = run_batch
        self.on_stable_study = on_stable_study
        self.page = page
        self.start_batch = start_batch
        """Optional: start a batch and return what waits for its outcome (up to ``in_flight`` batches at once)."""
        self.in_flight = in_flight
        self.own_outputs = own_outputs if own_outputs is not None else set()
        """Copies ``run_batch`` just stored (:attr:`JobBatchRunner.outputs`, the same set): their own NewInstance
        changes are skipped without reading them."""
        self.known_copy: Callable[[str], bool] = known_copy or (lambda instance_id: False)
        """Whether the links index knows this instance as a copy the plugin made (the only proof it is one)."""
        self.follow_new_instances = follow_new_instances
        """False in Gateway mode: what is stored is already anonymized; only stable studies matter (forwarding)."""
        self.started_at = started_at
        """The plugin's start, UTC ``YYYYMMDDTHHMMSS`` (see :meth:`start_position`)."""
        self.gaps = gaps
        """Several Orthancs write the log: do not move past a missing change number until it is known for good."""
        self.leading = leading
        """Several Orthancs: whether this one still leads ingest; :meth:`run_forever` returns once it does not."""
        self.wake = threading.Event()
        self._checks = ThreadPoolExecutor(self.CHECKS, thread_name_prefix="anonymizer-ingest-check")
        self.stopping = threading.Event()
        self.processed = 0
        self.skipped = 0
        self._pending: deque[tuple[Callable[[], BatchOutcome] | None, int, int]] = deque()
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], object] = self.stopping.wait
        self._arrivals_seen = 0
        """The newest change already looked at for arrivals."""
        self._catching_up = False
        """Arrivals did not pause within ``max_delay_seconds``: work until the end of the log without yielding."""
        self.yields = 0
        """How many times the loop waited for arrivals to pause (for tests and the log)."""

    def start_position(self) -> int:
        """Where to start: the saved position, or (first run) the end of the log, so old studies stay as they are.

        With :attr:`started_at` (the plugin's start, UTC ``YYYYMMDDTHHMMSS``), a first run starts before the
        first change logged since then instead: instances that arrived while Orthanc was still starting (before
        this thread could reach its REST API) are not skipped.
        """
        saved = self.cursor.load()
        if saved is not None:
            return saved
        last = int(self.source.get_json("/changes?last")["Last"])
        position = last
        if self.started_at is not None and last > 0:
            since = max(0, last - self.LOOK_BACK)
            answer = self.source.get_json(f"/changes?since={since}&limit={self.LOOK_BACK}")
            recent = [change for change in answer.get("Changes", []) if str(change.get("Date", "")) >= self.started_at]
            if recent:
                position = min(position, int(recent[0]["Seq"]) - 1)
        self.cursor.save(position)
        return position

    def yield_to_arrivals(self, position: int) -> None:
        """Scanner first: while originals keep arriving, wait; go on once none has come for ``quiet_seconds``.

        Storing a copy costs Orthanc about what storing the original did, so anonymizing during a burst slows the
        modality down; after the burst both cores are free for it. Only originals count (a ``NewInstance`` that is
        no copy of this plugin's): the copies log changes too. Arrivals that never pause hold the work back at most
        ``max_delay_seconds``; then the backlog is worked off to the end of the log before the loop yields again,
        so a busy Orthanc still gets its copies. Exactly-once is untouched: only when the work starts moves.
        """
        quiet = self.config.quiet_seconds
        if quiet <= 0 or not self.follow_new_instances or self._catching_up:
            return
        started = last_arrival = self.clock()
        seen = max(position, self._arrivals_seen)
        arrived = waited = False
        while not self.stopping.is_set():
            last = int(self.source.get_json("/changes?last")["Last"])
            if last > seen:
                if self._originals_among(max(seen, last - self.page), last):
                    arrived, last_arrival = True, self.clock()
                seen = last
            self._arrivals_seen = seen
            now = self.clock()
            if not arrived or now - last_arrival >= quiet:
                return
            if now - started >= self.config.max_delay_seconds:
                self._catching_up = True
                logger.info(
                    "ingest: arrivals did not pause for %.0f s; working off the backlog", self.config.max_delay_seconds
                )
                return
            if not waited:
                waited = True
                self.yields += 1
            self.sleep(min(self.TICK, quiet))

    def _originals_among(self, since: int, last: int) -> bool:
        """Whether the changes after ``since`` up to ``last`` include an arrival (an instance that is no copy)."""
        while since < last:
            changes = self.source.get_json(f"/changes?since={since}&limit={last - since}").get("Changes", [])
            if not changes:
                break
            for change in changes:
                if change.get("ChangeType") == "NewInstance" and not self._own_copy(str(change["ID"])):
                    return True
            since = int(changes[-1]["Seq"])
        return False

    def poll_once(self, position: int) -> tuple[int, bool]:
        """Handle the changes after ``position``; returns the new position and whether the log is exhausted."""
        answer = self.source.get_json(f"/changes?since={position}&limit={self.page}")
        changes, held = self._before_gap(position, answer.get("Changes", []))
        done = bool(answer.get("Done", True)) or held
        last = position if held else int(answer.get("Last", position))
        batch: list[str] = []
        batch_end = position
        arrived = [str(change["ID"]) for change in changes if change.get("ChangeType") == "NewInstance"]
        # One request per new instance (its tags, maybe its origin): a few at a time, not one after the other.
        wanted: set[str] = set()
        if self.follow_new_instances and arrived:
            checked = zip(arrived, self._checks.map(self._wanted, arrived), strict=True)
            wanted = {instance for instance, keep in checked if keep}
        for change in changes:
            sequence = int(change["Seq"])
            if change.get("ChangeType") == "NewInstance" and str(change["ID"]) in wanted:
                batch.append(str(change["ID"]))
            elif change.get("ChangeType") == "StableStudy" and self.on_stable_study is not None:
                self.on_stable_study(str(change["ID"]))
            batch_end = sequence
            if len(batch) >= self.config.batch_size:
                self._finish_batch(batch, batch_end)
                batch = []
        self._finish_batch(batch, max(batch_end, last if done else batch_end), drain=done)
        if done:
            self._catching_up = False  # the backlog is worked off: the next arrivals are yielded to again
        return max(batch_end, last if done else batch_end), done

    def _before_gap(self, position: int, changes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """The changes up to the first missing number that may still appear, and whether the list was cut there."""
        if self.gaps is None:
            return changes, False
        expected = position + 1
        for index, change in enumerate(changes):
            sequence = int(change["Seq"])
            if sequence > expected and not self.gaps.settled(expected):
                return changes[:index], True
            expected = sequence + 1
        return changes, False

    def _finish_batch(self, batch: list[str], position: int, drain: bool = False) -> None:
        """Run ``batch``; the saved position moves to ``position`` once it and every batch before it are done.

        With :attr:`start_batch`, up to :attr:`in_flight` batches run at once (the next is gathered and started
        while the previous ones are anonymized); the position still moves past batches in log order only."""
        if self.start_batch is None:
            if batch:
                self._report(self.run_batch(batch), len(batch))
            self.cursor.save(position)
            return
        if batch:
            while sum(1 for waiter, _, _ in self._pending if waiter is not None) >= self.in_flight:
                self._settle_oldest()
            self._pending.append((self.start_batch(batch), len(batch), position))
        else:
            self._pending.append((None, 0, position))
        while self._pending and (drain or self._pending[0][0] is None):
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest batch still running, then save the position past it."""
        waiter, size, end = self._pending[0]
        if waiter is not None:
            self._report(waiter(), size)
        self._pending.popleft()
        self.cursor.save(end)

    def _report(self, outcome: BatchOutcome, size: int) -> None:
        self.processed += outcome.anonymized
        if outcome.failed:
            logger.warning("ingest: %d of %d instances failed (see the audit trail)", len(outcome.failed), size)

    def _own_copy(self, instance_id: str) -> bool:
        """Whether this instance is a copy the plugin made (just stored by a batch, or known to the links index)."""
        return instance_id in self.own_outputs or self.known_copy(instance_id)

    def _wanted(self, instance_id: str) -> bool:
        if self._own_copy(instance_id):
            self.own_outputs.discard(instance_id)  # its one change is seen: the set does not grow
            self.skipped += 1
            return False
        try:
            tags = self.source.get_json(f"/instances/{instance_id}/simplified-tags")
        except ResourceNotFound:  # the instance may be gone already (deleted right after arrival)
            return False
        origin: dict[str, str] = {}
        if self.config.filter.origin:
            metadata = self.source.get_json(f"/instances/{instance_id}/metadata?expand")
            origin = {key: str(value) for key, value in metadata.items()}
        if not self.config.filter.matches(tags, origin):
            self.skipped += 1
            return False
        return True

    def run_forever(self, busy_seconds: float = 0.1, idle_seconds: float = 1.0, retry_seconds: float = 2.0) -> None:
        """Poll until :attr:`stopping` is set (or, in a cluster, until :attr:`leading` says the lead is lost).

        After a poll that found changes the next one comes ``busy_seconds`` later; each empty poll doubles the wait
        up to ``idle_seconds``. Polling costs one loopback request, on this thread; an on-change callback would cost
        a GIL round on Orthanc's threads for every change, copies included. Setting :attr:`wake` polls at once.
        Until Orthanc first answers (it is still starting) it is asked again every ``busy_seconds``.
        """
        position: int | None = None
        delay = retry_seconds
        wait = busy_seconds
        reached = False
        self._pending.clear()
        while not self.stopping.is_set():
            if self.leading is not None and not self.leading():
                break  # another Orthanc of the cluster takes over from the shared position
            try:
                if position is None:
                    position = self.start_position()
                    reached = True
                previous = position
                self.yield_to_arrivals(position)
                position, done = self.poll_once(position)
                delay = retry_seconds
                if done:
                    wait = busy_seconds if position != previous else min(idle_seconds, wait * 2)
                    self.wake.wait(wait)
                    self.wake.clear()
            except Exception as error:  # Orthanc not ready or gone: retry later from the saved position
                position = None
                self._pending.clear()  # batches still running are replayed from the saved position (harmless)
                if self.leading is not None and not self.leading():
                    break
                if not reached:
                    self.stopping.wait(busy_seconds)
                    continue
                logger.warning("ingest: will retry in %.0f s (%s)", delay, type(error).__name__)
                self.stopping.wait(delay)
                delay = min(delay * 2, 60.0)
        if self.stopping.is_set():  # else the lead was lost: run again once it is taken again
            self._checks.shutdown(wait=False)


class IngestInterrupted(AnonymizerError):
    """A batch did not end because Orthanc (or the plugin) is stopping; it is replayed after the restart."""


class JobBatchRunner:
    """``run_batch`` for :class:`IngestLoop`: a job at instance level through the same machinery as the REST
    routes (download, anonymize in a worker, store, verify, link, one audit record per instance, ``User`` "auto").

    With ``DeleteOriginal`` the job runs "in place": an original is deleted only once its copy is stored and its
    MD5 checked. A batch that Orthanc's stop interrupted raises :class:`IngestInterrupted`, so the position stays.
    """

    USER = "auto"

    def __init__(
        self,
        submit: Callable[[Job], Job],
        settings: JobSettings,
        stopping: threading.Event,
        outputs: set[str] | None = None,
    ) -> None:
        self.submit = submit
        self.settings = settings
        self.stopping = stopping
        self.outputs = outputs if outputs is not None else set()
        """The IDs of the copies stored (the loop's :attr:`IngestLoop.own_outputs`)."""

    def __call__(self, instance_ids: list[str]) -> BatchOutcome:
        return self.start(instance_ids)()

    def start(self, instance_ids: list[str]) -> Callable[[], BatchOutcome]:
        """Submit the batch's job now; the returned callable waits for it and gives its outcome."""
        job = self.submit(Job(level="instances", resources=list(instance_ids), settings=self.settings, user=self.USER))
        return lambda: self._outcome(job)

    def _outcome(self, job: Job) -> BatchOutcome:
        while not job.done.wait(0.5):
            if self.stopping.is_set():
                raise IngestInterrupted(f"job {job.id}: the plugin is stopping")
        if INTERRUPTED in job.errors:
            raise IngestInterrupted(f"job {job.id}: {INTERRUPTED}")
        outcome = BatchOutcome()
        for result in job.results:
            if result.error is not None:
                if result.source not in job.not_found:  # deleted since it arrived: nothing to anonymize
                    outcome.failed.append(InstanceFailure(result.source, result.error))
                continue
            outcome.anonymized += result.instances
            if result.resource is not None:
                self.outputs.add(result.resource)
            outcome.failed.extend(result.failed)
        return outcome
