"""Keyed, deterministic replacements: UIDs (action U), patient pseudonyms and per-patient date offsets.

Everything here is an HMAC-SHA256 of the original value under the site's secret, so the same input and secret
give the same output in every call, process and machine, and nobody without the secret can recompute the
mapping from a list of candidate originals (an unkeyed hash could be reversed that way).

A copy belongs to a *scope*: the project it is made for (``Project``, default empty) and, for UIDs and derived
pseudonyms, the patient identity the caller chose (PatientName/PatientID). :meth:`KeyedHasher.scoped` derives the scope's own key from
the secret, so copies that differ in project or chosen identity share no UID and no pseudonym, while the empty
scope keeps the secret itself as the key: the mapping of every copy made before projects existed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace

from pydicom._uid_dict import UID_dictionary

STANDARD_UIDS = frozenset(UID_dictionary)
"""DICOM's own UIDs (SOP classes, transfer syntaxes, coding schemes...): never replaced, never identifying."""
DEFAULT_DATE_SHIFT_DAYS = 3650
MAX_PROJECT_LENGTH = 64
"""The longest project name accepted (it is recorded in every audit record and job record)."""


def check_project(project: object) -> str:
    """``project`` as a project name, or :class:`ValueError` saying what is wrong with it (never quoting it).

    A project name is at most :data:`MAX_PROJECT_LENGTH` printable characters, without leading or trailing
    spaces (``"A "`` and ``"A"`` would otherwise be two projects that look the same); empty means no project.
    """
    if not isinstance(project, str):
        raise ValueError(f"expected a string, got {type(project).__name__}")
    if len(project) > MAX_PROJECT_LENGTH:
        raise ValueError(f"longer than {MAX_PROJECT_LENGTH} characters ({len(project)})")
    if not project.isprintable():
        raise ValueError("holds a control or other non-printable character")
    if project != project.strip():
        raise ValueError("starts or ends with a space")
    return project


@dataclass(frozen=True)
class KeyedHasher:
    """Derives replacements from originals with one secret. Holds no state but the key; safe to pickle."""

    secret: bytes = field(repr=False)
    date_shift_days: int = DEFAULT_DATE_SHIFT_DAYS
    """Dates are shifted back by 1 to this many days (RetainLongModifDates)."""

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the anonymization secret must not be empty")

    def scoped(self, project: str = "", patient_name: str | None = None, patient_id: str | None = None) -> KeyedHasher:
        """The hasher of one scope: its key is an HMAC of the secret over the project and the chosen identity.

        The empty scope (no project, no chosen identity) is this hasher itself, so its output is unchanged.
        ``None`` (not chosen) and ``""`` (chosen empty) are different identities.
        """
        if not project and patient_name is None and patient_id is None:
            return self
        scope = json.dumps({"Project": project, "PatientName": patient_name, "PatientID": patient_id}, sort_keys=True)
        key = hmac.new(self.secret, b"scope\x00" + scope.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return replace(self, secret=key)

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` for ``purpose``; separate purposes never collide."""
        return hmac.new(self.secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The new UID for ``original``: ``2.25.`` and a 128-bit integer shaped as an RFC 9562 version-8 UUID.

        Standard DICOM UIDs (SOP classes, transfer syntaxes...) are returned unchanged.
        """
        original = original.strip().rstrip("\x00")
        if not original or original in STANDARD_UIDS:
            return original
        raw = bytearray(self.digest("uid", original)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8: custom
        raw[8] = (raw[8] & 0x3F) | 0x80  # variant RFC 9562
        return "2.25." + str(int.from_bytes(raw, "big"))

    def token(self, purpose: str, value: str, length: int = 12) -> str:
        """An upper-case base-32 token of ``length`` characters derived from ``value``."""
        import base64

        return base64.b32encode(self.digest(purpose, value)).decode("ascii")[:length]

    def patient_id(self, patient_key: str) -> str:
        """Pseudonymous PatientID for a patient (stable across all studies of that patient)."""
        return "ANON" + self.token("patient-id", patient_key, 12)

    def patient_name(self, patient_key: str) -> str:
        """Pseudonymous PatientName (PN) for a patient."""
        return "ANONYMOUS^" + self.token("patient-name", patient_key, 8)

    def date_offset_days(self, patient_key: str) -> int:
        """Days to subtract from every date of this patient: 1..date_shift_days, fixed per patient."""
        number = int.from_bytes(self.digest("date-shift", patient_key)[:8], "big")
        return 1 + number % self.date_shift_days
