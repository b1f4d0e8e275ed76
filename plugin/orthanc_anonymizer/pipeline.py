"""The one path of an instance: original bytes and settings in, a typed :class:`InstanceOutcome` out.

Every transport runs this: the CLI (files), the plugin's workers (jobs, on-ingest anonymization) and Gateway mode
(:mod:`.server.gateway`); the Python API (:mod:`.anonymizer`) too. One parse, of the header only where the pixel
data goes through untouched; the identifying values for the residual-PHI check are read from the data set before
the engine changes it, and the check searches the output data set and the written bytes, never a second parse.

The outcome says what went wrong as a :class:`Failure` member: callers branch on it, never on message text. Imports
run one way: the server and the CLI import this module; it imports only the engine (:mod:`.deid`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_dataset, read_instance
from orthanc_anonymizer.deid.verify import IdentifyingValues, Leak
from orthanc_anonymizer.errors import AnonymizerError
from orthanc_anonymizer.logs import exception_summary


class Failure(StrEnum):
    """Why an instance gave no usable copy. Text for people is in :attr:`InstanceOutcome.reason`, never compared."""

    INVALID_INPUT = "invalid input"
    """Not DICOM, damaged, or refused by the engine (:class:`~.errors.AnonymizerError`), or a bug it hit."""
    CHECK_FAILED = "residual-PHI check failed"
    """The residual-PHI check itself could not run: the copy cannot be shown clean."""
    RESIDUAL_PHI = "residual PHI"
    """The copy still holds identifying values of the original (:attr:`InstanceOutcome.leaks` says where)."""
    WOULD_REPLACE_ORIGINAL = "would replace the original"
    """The copy keeps the original's PatientID and UIDs: Orthanc would file it under the original's ID."""
    NOT_MATCHED = "not matched by the filter"
    """The instance is not one the caller's filter selects (on-ingest and Gateway mode's ``Filter``)."""


REPLACES_ORIGINAL = (
    "the copy keeps the original's PatientID and UIDs (RetainUIDs?) and would replace it in Orthanc; "
    "give another PatientID"
)
MOST_NAMED_LEAK_PATHS = 10


@dataclass(frozen=True)
class InstanceTask:
    """What to do with one instance: the engine's settings and what the transport needs checked."""

    settings: AnonymizationSettings
    dry_run: bool = False
    """Record the changes and give no copy (no residual-PHI check, no identity check)."""
    check_residual: bool = True
    """Search the copy for identifying values of the original (:mod:`.deid.verify`)."""
    orthanc_identity: bool = True
    """The copy goes into an Orthanc that holds the original: compute its Orthanc ID and refuse a copy that would
    get the original's (:attr:`Failure.WOULD_REPLACE_ORIGINAL`). Files (the CLI) have no such clash."""


@dataclass
class InstanceOutcome:
    """What the pipeline made of one instance. Holds no PHI unless the settings asked for values (a dry run's
    ``IncludeValues``). Pickled to the job's thread as one ``bytes``, not the pieces."""

    parts: list[bytes | memoryview] | None = field(default=None, repr=False)
    """The copy as the pieces to write (the header, then the original's pixel data without a copy); ``None`` on a
    dry run or a failure that gives no copy."""
    failure: Failure | None = None
    reason: str = ""
    """Why (the error's type and a value-free message), for people; empty when there is no failure."""
    explanation: str = ""
    """:attr:`reason` as the CLI prints it: the engine's own errors without their type (their messages name the
    bad part themselves)."""
    changes: list[dict[str, object]] = field(default_factory=list)
    """What happened to each attribute (dry run only), as :meth:`.deid.engine.Change.as_json` gives it."""
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pixel_regions: list[dict[str, object]] = field(default_factory=list)
    """The boxes Clean Pixel Data blacked out (:attr:`.deid.pixels.PixelOutcome.regions`): coordinates, never
    pixels."""
    residual_clean: bool | None = None
    """The residual-PHI verdict; ``None`` when not checked."""
    leaks: list[Leak] = field(default_factory=list)
    """Where residual PHI was found: tags and paths only."""
    checked_values: int | None = None
    """How many identifying values of the original were looked for (``None``: not checked)."""
    orthanc_id: str | None = None
    """The Orthanc ID the copy will have once stored (:func:`orthanc_instance_id`), with ``orthanc_identity``."""
    _joined: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def data(self) -> bytes | None:
        """The copy as one ``bytes`` (joined once, when first asked)."""
        if self._joined is None and self.parts is not None:
            self._joined = b"".join(self.parts)
            self.parts = [self._joined]
        return self._joined

    @property
    def error(self) -> str | None:
        """Why the instance gave no copy at all (``None`` for a copy, also one with residual PHI: see
        :attr:`failure`)."""
        return self.reason if self.failure is not None and self.failure is not Failure.RESIDUAL_PHI else None

    @property
    def residual_leaks(self) -> list[str]:
        """The paths of :attr:`leaks`."""
        return [leak.path for leak in self.leaks]

    @property
    def leak_locations(self) -> str:
        """Where residual PHI was found, for a message: the first few distinct paths, sorted."""
        return ", ".join(sorted(set(self.residual_leaks))[:MOST_NAMED_LEAK_PATHS])

    @property
    def md5(self) -> str:
        """The MD5 of :attr:`data` (hex), as Orthanc computes it of a stored file. Computed when asked, by the job's
        thread (hashlib releases the GIL): most copies never need it, and it cost the worker ~1.4 ms a CT image."""
        data = self.data
        return hashlib.md5(data).hexdigest() if data is not None else ""

    def write_file(self, destination: Path) -> None:
        """Write the copy to ``destination`` (its folder created) through a temporary file renamed into place, so
        the path never holds half a file; the pieces are written as they are (the original's pixel data without a
        copy)."""
        assert self.parts is not None, "no copy to write"
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.{os.getpid()}.part")
        try:
            with temporary.open("wb") as output:
                for part in self.parts:
                    output.write(part)
            os.replace(temporary, destination)
        finally:
            temporary.unlink(missing_ok=True)

    def dataset(self) -> Dataset | None:
        """The copy read back as a pydicom data set (``None`` when there is none)."""
        data = self.data
        return None if data is None else dcmread(BytesIO(data))

    def __getstate__(self) -> dict[str, Any]:
        # A memoryview does not pickle: the copy travels as one bytes.
        state = dict(self.__dict__)
        state["_joined"] = self.data
        state["parts"] = None if self._joined is None else [self._joined]
        return state


@dataclass(frozen=True)
class InstanceFailure:
    """One instance of a job (or a Gateway decision) that gave no stored copy: its Orthanc ID and why."""

    instance: str | None
    """The original's Orthanc ID (``None`` in Gateway mode: the original is never stored)."""
    reason: str
    """Value-free, for people."""
    failure: Failure | None = None
    """What the pipeline found; ``None`` for what happened around it (a worker died, Orthanc refused the copy)."""

    @property
    def residual_phi(self) -> bool:
        return self.failure is Failure.RESIDUAL_PHI

    def as_json(self) -> dict[str, object]:
        return {"Instance": self.instance, "Reason": self.reason}


def failed(failure: Failure, error: BaseException | str) -> InstanceOutcome:
    """An outcome without a copy, for ``error`` (an exception, or a message of ours)."""
    if isinstance(error, str):
        return InstanceOutcome(failure=failure, reason=error, explanation=error)
    reason = exception_summary(error)
    return InstanceOutcome(
        failure=failure, reason=reason, explanation=str(error) if isinstance(error, AnonymizerError) else reason
    )


def anonymize_instance(data: bytes, task: InstanceTask) -> InstanceOutcome:
    """Anonymize one DICOM file given as bytes. Never raises: a failure comes back as :attr:`~InstanceOutcome.failure`
    with a value-free :attr:`~InstanceOutcome.reason`."""
    try:
        instance = read_instance(data, task.settings.profile)
    except Exception as error:
        return failed(Failure.INVALID_INPUT, error)
    dataset = instance.dataset
    original_identity = identity(dataset) if task.orthanc_identity and not task.dry_run else None
    identifying: IdentifyingValues | None = None
    if task.check_residual and not task.dry_run:
        try:
            identifying = IdentifyingValues.collect(dataset, task.settings.profile)
        except Exception as error:
            return failed(Failure.CHECK_FAILED, error)
    try:
        report = anonymize_dataset(dataset, task.settings, record_changes=task.dry_run)
        parts = instance.output_parts()
    except Exception as error:  # a bug or an input pydicom cannot handle: named, the caller goes on with others
        return failed(Failure.INVALID_INPUT, error)
    outcome = InstanceOutcome(counts=report.counts(), warnings=list(report.warnings))
    outcome.pixel_regions = list(report.pixel_regions)
    if task.dry_run:
        outcome.changes = [change.as_json() for change in report.changes]
        return outcome
    if original_identity is not None:
        new_identity = identity(dataset)
        if new_identity == original_identity:
            return failed(Failure.WOULD_REPLACE_ORIGINAL, REPLACES_ORIGINAL)
        outcome.orthanc_id = orthanc_instance_id(*new_identity)
    outcome.parts = parts
    if identifying is not None:
        try:
            # After writing: the search converts the kept elements, which must be written as they were read.
            residual = identifying.search_written(dataset, parts)
        except Exception as error:
            return failed(Failure.CHECK_FAILED, error)
        outcome.residual_clean = residual.clean
        outcome.leaks = list(residual.leaks)
        outcome.checked_values = residual.checked_values
        if not residual.clean:
            outcome.failure = Failure.RESIDUAL_PHI
            outcome.reason = outcome.explanation = f"residual PHI found at {outcome.leak_locations}"
    return outcome


# PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID: what Orthanc derives an instance's ID from.
IDENTITY_TAGS = (0x00100020, 0x0020000D, 0x0020000E, 0x00080018)


def identity(dataset: Dataset) -> tuple[str, ...]:
    """What Orthanc derives an instance's ID from (its patient, study, series and instance)."""
    return tuple(str(dataset[tag].value) if tag in dataset else "" for tag in IDENTITY_TAGS)


def orthanc_instance_id(patient_id: str, study: str, series: str, instance: str) -> str:
    """Orthanc's ID of an instance: SHA-1 of its identifiers, in five groups of eight hex digits."""
    digest = hashlib.sha1(f"{patient_id}|{study}|{series}|{instance}".encode()).hexdigest()
    return "-".join(digest[index : index + 8] for index in range(0, 40, 8))
