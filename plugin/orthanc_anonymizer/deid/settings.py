"""What one anonymization needs besides the data: the profile, the keys, the chosen identity, the pixel rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from orthanc_anonymizer.deid.pixels import PixelSettings
from orthanc_anonymizer.deid.profiles import BASIC, Profile
from orthanc_anonymizer.deid.uids import KeyedHasher


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
    pixels: PixelSettings = field(default_factory=PixelSettings)
    """Redaction rules and OCR for the CleanPixelData option (PS3.15 E.3.1); see :mod:`.pixels`."""
    project: str = ""
    """The project the copy is made for: UIDs, pseudonyms and date offsets are keyed by it (see :mod:`.uids`)."""
