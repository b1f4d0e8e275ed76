"""Job records: a job's settings, its live state and results, and their JSON files under the state folder.

A job (:class:`Job`) is what a REST request, a batch or on-ingest anonymization asks of the job manager
(:mod:`.jobs`); its :meth:`Job.record` is the JSON that ``GET /anonymizer/jobs/{id}`` answers and :class:`JobStore`
keeps on disk after the job ends (a dry run's values never reach the disk).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from orthanc_anonymizer import __version__
from orthanc_anonymizer.deid.engine import AnonymizationSettings
from orthanc_anonymizer.deid.profiles import Profile, Rule
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.weakening import Weakening, chosen_identity, named, weakenings
from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.pipeline import InstanceFailure
from orthanc_anonymizer.server.orthanc_client import LEVELS

logger = logging.getLogger("orthanc_anonymizer.jobs")

INTERRUPTED = "interrupted: Orthanc stopped before the job ended"


class JobState(StrEnum):
    """A job's ``State`` (an anonymization's or a forward's): the strings of the job records, compared as members."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"


def rules_digest(rules: Sequence[Rule]) -> str | None:
    """``sha256:`` of the rules as ``pattern;action`` lines: the same rules give the same digest (``None``: none)."""
    if not rules:
        return None
    text = "\n".join(f"{rule.pattern};{rule.action.value}" for rule in rules)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class JobSettings:
    """One request's settings, checked. ``patient_name``/``patient_id`` are the caller's new values."""

    profile: Profile
    patient_name: str | None = None
    patient_id: str | None = None
    in_place: bool = False
    dry_run: bool = False
    include_values: bool = False
    project: str = ""
    """The project the copies are for (checked by :func:`.uids.check_project`); keys their UIDs and pseudonyms."""

    def engine_settings(self, hasher: KeyedHasher) -> AnonymizationSettings:
        return AnonymizationSettings(
            profile=self.profile,
            hasher=hasher,
            patient_name=self.patient_name,
            patient_id=self.patient_id,
            record_values=self.dry_run and self.include_values,
            project=self.project,
        )

    def describe(self) -> dict[str, object]:
        """JSON for the job record, the audit trail and the ``AnonymizationProfile`` metadata. No values."""
        description = {
            "Profile": self.profile.name,
            "Options": [option.value for option in self.profile.sorted_options],
            # A count and a digest, not the rules: a record's size must not grow with what a caller sends.
            "RuleCount": len(self.profile.rules),
            "RulesDigest": rules_digest(self.profile.rules),
            "Edition": self.profile.describe()["Edition"],
            "EngineVersion": __version__,
            "Project": self.project,  # a name the site gives, not PHI; checked for length and characters
        }
        if self.patient_name is not None:
            description["PatientNameGiven"] = True
        if self.patient_id is not None:
            description["PatientIDGiven"] = True
        weakened = self.weakenings
        if weakened:  # rules that keep or clean what Basic with these options removes: tag numbers, never values
            description["Weakened"] = named(weakened)
            description["PatientIdentityRemoved"] = not any(weakening.identity for weakening in weakened)
        return description

    @functools.cached_property
    def weakenings(self) -> tuple[Weakening, ...]:
        """The rules of :attr:`profile` that weaken Basic with its options, as the engine marks the output."""
        return weakenings(self.profile, chosen=chosen_identity(self.patient_name, self.patient_id))

    @functools.cached_property
    def description(self) -> dict[str, object]:
        """:meth:`describe`, made once per job (not changed by its users): each instance's audit record holds it."""
        return self.describe()

    @functools.cached_property
    def description_json(self) -> str:
        """:attr:`description` as the ``AnonymizationProfile`` metadata's value."""
        return json.dumps(self.description, sort_keys=True)


@dataclass
class ResourceResult:
    """What a job did with one of its resources; :meth:`as_json` is its entry in the job record's ``Results`` (and
    the answer of a synchronous request). IDs, counts and fixed texts: no values outside a dry run's changes."""

    source: str
    """The original's Orthanc ID."""
    level: str
    """Orthanc's name of the level: ``Patient``, ``Study``, ``Series`` or ``Instance``."""
    error: str | None = None
    """Why nothing of the resource was anonymized: Orthanc did not know it, or could not list its instances."""
    failed: list[InstanceFailure] = field(default_factory=list)
    """The instances that failed, each with its reason."""
    dry_run: bool = False
    instances: int = 0
    """Instances examined (dry run) or copies stored."""
    changes: list[dict[str, object]] = field(default_factory=list)
    """A dry run's changes, each with its instance's ID."""
    pixel_regions: list[dict[str, object]] = field(default_factory=list)
    """A dry run's Clean Pixel Data boxes, each with its instance's ID (coordinates only)."""
    resources: list[str] = field(default_factory=list)
    """The copies at the resource's level (one, unless the originals' instances went to several)."""
    complete: bool = False
    """Every instance listed has its copy stored."""
    originals: dict[str, Any] | None = None
    """InPlace only: what became of the originals (``Deleted``, ``OriginalsDeleted``, ``OriginalsKept``, ...)."""
    audit: int | None = None
    """The sequence number of the resource's audit record (``None``: not written)."""

    @property
    def resource(self) -> str | None:
        """The copy (the first, when there are several)."""
        return self.resources[0] if self.resources else None

    @property
    def failed_any(self) -> bool:
        """The resource, or one of its instances, failed."""
        return self.error is not None or bool(self.failed)

    def as_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"Source": self.source, "Level": self.level, "Error": self.error}
        out: dict[str, Any] = {
            "Source": self.source,
            "Level": self.level,
            "Failed": [failure.as_json() for failure in self.failed],
        }
        if self.dry_run:
            out.update({"DryRun": True, "Instances": self.instances, "Changes": list(self.changes)})
            if self.pixel_regions:
                out["PixelRegions"] = list(self.pixel_regions)
        else:
            out.update({"Resource": self.resource, "Instances": self.instances, "Complete": self.complete})
            if len(self.resources) > 1:
                out["Resources"] = list(self.resources)
            if self.originals is not None:
                out.update(self.originals)
        out["Audit"] = self.audit
        return out


@dataclass
class Job:
    """A job and its live state. :meth:`record` is its JSON form (``GET /anonymizer/jobs/{id}``)."""

    level: str
    """URI segment of the resources' level: ``patients``, ``studies``, ``series`` or ``instances``."""
    resources: list[str]
    settings: JobSettings
    user: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: JobState = JobState.PENDING
    progress: int = 0
    results: list[ResourceResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_found: set[str] = field(default_factory=set)
    """The resources Orthanc did not know when the job listed them (their results say ``unknown resource``): how
    the routes answer 404 and on-ingest anonymization skips an instance deleted since it arrived."""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def record(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Type": "DryRun" if self.settings.dry_run else "Anonymize",
            "Level": LEVELS[self.level],
            "Resources": list(self.resources),
            "Settings": {**self.settings.description, "InPlace": self.settings.in_place},
            "User": self.user,
            "State": self.state,
            "Progress": self.progress,
            "Results": [result.as_json() for result in self.results],
            "Errors": list(self.errors),
            "CreationTime": timestamp(self.created),
            "StartTime": timestamp(self.started),
            "CompletionTime": timestamp(self.finished),
        }


def timestamp(moment: float | None) -> str | None:
    """``moment`` (seconds since the epoch) as Orthanc writes times in job records: ``20261207T070000Z``."""
    if moment is None:
        return None
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(moment))


_VALUE_FIELDS = ("Original", "New")
"""A dry run's values (``IncludeValues``): in the answer and in memory, never on disk."""


def without_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` as written to disk: the original and new values of a dry run left out, ``ValuesOmitted`` said."""
    results = record.get("Results") or []
    if not any(key in change for result in results for change in result.get("Changes") or [] for key in _VALUE_FIELDS):
        return dict(record)
    kept = [
        {**result, "Changes": [{k: v for k, v in c.items() if k not in _VALUE_FIELDS} for c in result["Changes"]]}
        if result.get("Changes")
        else result
        for result in results
    ]
    return {**record, "Results": kept, "ValuesOmitted": True}


class JobStore:
    """Job records as JSON files, one per job, written atomically and kept after the job ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.json"

    def save(self, record: Mapping[str, Any]) -> None:
        path = self._path(str(record["ID"]))
        temporary = path.with_suffix(f".{threading.get_ident()}.tmp")
        try:
            temporary.write_text(json.dumps(without_values(record), indent=1), encoding="utf-8")
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)  # a full disk leaves no half-written record behind
            raise

    def load(self, job_id: str) -> dict[str, Any] | None:
        try:
            uuid.UUID(job_id)
        except ValueError:
            return None
        try:
            loaded: dict[str, Any] = json.loads(self._path(job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return loaded

    def mark_interrupted(self) -> int:
        """Jobs a previous Orthanc left pending or running end as failures (their copies so far stay linked)."""
        count = 0
        for path in self.directory.glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:  # one damaged record must not stop Orthanc's start-up
                logger.warning("job record %s unreadable, left as it is: %s", path.name, exception_summary(error))
                continue
            if isinstance(record, dict) and record.get("State") in (JobState.PENDING, JobState.RUNNING):
                # The resources the job did not conclude: a copy of one may be partial (no result says Complete).
                concluded = {result.get("Source") for result in record.get("Results", [])}
                unfinished = [
                    f"{record.get('Level')} {resource}: not finished; its copy, if any, is partial"
                    for resource in record.get("Resources", [])
                    if resource not in concluded
                ]
                record["State"] = JobState.FAILURE
                record["Errors"] = [*record.get("Errors", []), *unfinished, INTERRUPTED]
                self.save(record)
                count += 1
        return count
