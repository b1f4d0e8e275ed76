"""The attributes that say an instance was de-identified, and how (PS3.15 E.1.1): Patient Identity Removed,
De-identification Method (which names this engine, its version and the profile: the output marker) and its code
sequence, Longitudinal Temporal Information Modified. Written once the walk is done.

The writer of the marker and its reader (:func:`claims_engine_output`) are this one module, so they cannot drift
apart. A marker is a claim, never a proof: PatientIdentityRemoved and DeidentificationMethod are attributes anyone
can write into a file, and nothing decides from them that a file is already anonymized. The plugin knows its own
copies by provenance an outsider cannot forge (the links index in Copy mode, the exact bytes being stored in
Gateway mode; see :mod:`orthanc_anonymizer.server.ingest` and :mod:`orthanc_anonymizer.server.gateway`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from orthanc_anonymizer import __version__
from orthanc_anonymizer.deid import standard
from orthanc_anonymizer.deid.profiles import BASIC_PROFILE_CODE, Option, Profile
from orthanc_anonymizer.deid.weakening import Weakening, chosen_identity, method_values, weakenings

ENGINE_NAME = "orthanc-anonymizer"
"""How De-identification Method names this engine (followed by its version and the profile's name)."""
MARKER_TAGS = frozenset({0x00120062, 0x00120063, 0x00280303})
"""PatientIdentityRemoved, DeidentificationMethod, LongitudinalTemporalInformationModified: written whole here,
never copied from the original, so a word of them ("Rules", "Basic") is no leak even where it equals a component
of an original value (the residual-PHI check does not search them)."""
WEAKENED_CODE = ("WEAKENED", "99OANON", "Profile weakened by custom rules")
"""(Code Value, Coding Scheme Designator, Code Meaning) of the local code added to De-identification Method Code
Sequence when rules weaken the profile; the rules are named in De-identification Method."""


def add_deidentification_attributes(
    dataset: Dataset, profile: Profile, patient_name: str | None, patient_id: str | None
) -> None:
    """PS3.15 E.1.1: Patient Identity Removed, De-identification Method and its code sequence, for ``dataset``
    anonymized under ``profile`` (``patient_name``, ``patient_id``: the identity the caller chose, if any)."""
    weakened = _profile_weakenings(profile, chosen_identity(patient_name, patient_id))
    # A rule that keeps or cleans a name, ID, birth date... of the patient: the output does not say it is removed
    dataset.PatientIdentityRemoved = "NO" if any(weakening.identity for weakening in weakened) else "YES"
    methods = [f"DICOM PS3.15 {standard.EDITION} Basic Profile"]
    methods += [option.value for option in profile.sorted_options]
    methods.append(f"{ENGINE_NAME} {__version__} profile {profile.name}"[:64])
    if profile.rules:
        methods.append(f"custom rules: {len(profile.rules)}")
    if profile.age_cap is not None:
        methods.append(f"ages of {profile.age_cap} years and over written as {profile.age_cap}")
    methods += method_values(weakened)
    dataset.DeidentificationMethod = methods
    codes = Sequence()
    for value, meaning in [BASIC_PROFILE_CODE, *(option.code for option in profile.sorted_options)]:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    if weakened:
        # CID 7050 has no code for a weakened profile: a local one, so a reader of the codes alone sees it too.
        item = Dataset()
        item.CodeValue = WEAKENED_CODE[0]
        item.CodingSchemeDesignator = WEAKENED_CODE[1]
        item.CodeMeaning = WEAKENED_CODE[2]
        codes.append(item)
    dataset.DeidentificationMethodCodeSequence = codes
    if Option.RetainLongModifDates in profile.options:
        dataset.LongitudinalTemporalInformationModified = "MODIFIED"
    elif Option.RetainLongFullDates in profile.options:
        dataset.LongitudinalTemporalInformationModified = "UNMODIFIED"
    else:
        dataset.LongitudinalTemporalInformationModified = "REMOVED"
    if any(weakening.dates for weakening in weakened):  # a rule keeps original dates: not all are modified
        dataset.LongitudinalTemporalInformationModified = "UNMODIFIED"


@lru_cache(maxsize=32)
def _profile_weakenings(profile: Profile, chosen: frozenset[int]) -> tuple[Weakening, ...]:
    """:func:`.weakening.weakenings` once per profile in a process, not once per instance."""
    return weakenings(profile, chosen=chosen)


def claims_engine_output(tags: Mapping[str, str]) -> bool:
    """Whether an instance's tags (Orthanc's ``simplified-tags``) *claim* it is this engine's output: the marker
    :func:`add_deidentification_attributes` writes (PatientIdentityRemoved ``NO`` too: written when rules keep the
    patient's identity). A claim anyone can write: never a reason to skip anonymizing a file."""
    if str(tags.get("PatientIdentityRemoved", "")).strip().upper() not in ("YES", "NO"):
        return False
    return ENGINE_NAME in str(tags.get("DeidentificationMethod", ""))
