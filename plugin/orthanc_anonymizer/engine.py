"""The engine: de-identify one DICOM dataset as PS3.15 Annex E says. Pure pydicom; knows nothing of Orthanc.

``anonymize_dataset`` changes a :class:`~pydicom.dataset.Dataset` in place and returns a report of every change;
``anonymize_bytes`` does the same for the bytes of a DICOM file (what a worker process receives and returns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from .profiles import BASIC, Profile
from .uids import KeyedHasher


@dataclass
class AnonymizationSettings:
    """Everything one anonymization needs besides the data. Picklable, so it travels to worker processes."""

    profile: Profile = BASIC
    hasher: KeyedHasher = field(default_factory=lambda: KeyedHasher(b"development-only-secret"), repr=False)
    patient_name: str | None = None
    """Replacement PatientName; default: a keyed pseudonym of the original patient."""
    patient_id: str | None = None
    """Replacement PatientID; default: a keyed pseudonym of the original patient."""
    record_values: bool = False
    """Keep original and new values in the report's changes (a dry run that asks for them). PHI: never log."""


@dataclass(frozen=True)
class Change:
    """What happened to one attribute. Without ``record_values`` it holds tag numbers and codes only."""

    path: str
    """Where: ``"0008,1140[0]/0008,1155"`` (sequence tag, item index, ..., tag); file meta tags start ``0002``."""
    tag: str
    """``"GGGG,EEEE"``."""
    keyword: str
    rule: str
    """The action the table or a custom rule names, e.g. ``"X/Z/D"``."""
    action: str
    """What was done: ``X`` removed, ``Z`` emptied, ``D`` dummy, ``K`` kept, ``C`` cleaned, ``U`` new UID,
    ``P`` patient pseudonym or chosen value, ``S`` date shifted (``C`` under RetainLongModifDates)."""
    changed: bool
    original: str | None = None
    new: str | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "Path": self.path,
            "Tag": self.tag,
            "Keyword": self.keyword,
            "Rule": self.rule,
            "Action": self.action,
            "Changed": self.changed,
        }
        if self.original is not None or self.new is not None:
            out["Original"] = self.original
            out["New"] = self.new
        return out


@dataclass
class AnonymizationReport:
    """The outcome of anonymizing one instance."""

    changes: list[Change] = field(default_factory=list)
    sop_class_uid: str = ""
    study_instance_uid: str = ""
    """New StudyInstanceUID (not PHI: keyed)."""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    identifying_values: set[str] = field(default_factory=set, repr=False)
    """Values of the original that the profile removed or replaced (PHI: for the residual check only)."""
    warnings: list[str] = field(default_factory=list)
    """Messages without values, e.g. ``"0008,0020: unparsable date left empty"``."""

    def counts(self) -> dict[str, int]:
        """How many attributes each action touched (for the audit trail)."""
        result: dict[str, int] = {}
        for change in self.changes:
            result[change.action] = result.get(change.action, 0) + 1
        return result


def anonymize_dataset(dataset: Dataset, settings: AnonymizationSettings) -> AnonymizationReport:
    """De-identify ``dataset`` in place (file meta included) and report what was done."""
    raise NotImplementedError


def anonymize_bytes(data: bytes, settings: AnonymizationSettings) -> tuple[bytes, AnonymizationReport]:
    """De-identify the DICOM file ``data``; the pixel data and its encoding pass through untouched.

    Raises :class:`~orthanc_anonymizer.errors.InvalidDicomError` when ``data`` is not DICOM.
    """
    raise NotImplementedError


def anonymize_file(source: Path, destination: Path, settings: AnonymizationSettings) -> AnonymizationReport:
    """De-identify the file ``source`` into ``destination`` (parent folders are created)."""
    raise NotImplementedError


def read_dataset(data: bytes) -> Dataset:
    """Parse DICOM bytes (with or without the 128-byte preamble)."""
    return dcmread(BytesIO(data), force=False)
