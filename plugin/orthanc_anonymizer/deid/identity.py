"""The PatientName and PatientID a caller chooses (REST ``PatientName``/``PatientID``, CLI ``--patient-name``/
``--patient-id``): checked against their value representations (PS3.5 6.2) before any job starts.

PN (Person Name): at most three component groups (alphabetic, ideographic, phonetic) separated by ``=``, each at
most 64 characters, of at most five components separated by ``^``. LO (Long String): at most 64 characters. Neither
holds a backslash (it would make a second value) nor a control character. Whether the characters can be written in
an instance's Specific Character Set is known only per instance: :func:`encodable` is what the engine asks.
Messages name the field and the limit, never the value.
"""

from __future__ import annotations

import codecs
import unicodedata

from orthanc_anonymizer.errors import AnonymizerError

PN_GROUP_CHARACTERS = 64
PN_GROUPS = 3
PN_COMPONENTS = 5
LO_CHARACTERS = 64


class ValueRejected(AnonymizerError):
    """A chosen value does not fit its value representation; the message names the field and the limit."""


def _check_characters(value: str, name: str) -> None:
    for position, character in enumerate(value):
        category = unicodedata.category(character)
        if category in ("Cc", "Cs"):
            kind = "a control character" if category == "Cc" else "an unpaired surrogate"
            raise ValueRejected(f"{name}: {kind} (U+{ord(character):04X}) at character {position + 1}")
        if character == "\\":
            raise ValueRejected(f"{name}: a backslash (it separates values; {name} holds one)")


def check_patient_name(value: str, name: str = "PatientName") -> str:
    """``value`` if it is one valid PN value; :class:`ValueRejected` naming ``name`` and the limit otherwise."""
    _check_characters(value, name)
    groups = value.split("=")
    if len(groups) > PN_GROUPS:
        raise ValueRejected(f"{name}: {len(groups)} component groups ('='), at most {PN_GROUPS} (PN, PS3.5 6.2)")
    for number, group in enumerate(groups, 1):
        if len(group) > PN_GROUP_CHARACTERS:
            raise ValueRejected(
                f"{name}: component group {number} has {len(group)} characters, at most {PN_GROUP_CHARACTERS} "
                "(PN, PS3.5 6.2)"
            )
        if group.count("^") >= PN_COMPONENTS:
            raise ValueRejected(f"{name}: more than {PN_COMPONENTS} components ('^') in a group (PN, PS3.5 6.2)")
    return value


def check_patient_id(value: str, name: str = "PatientID") -> str:
    """``value`` if it is one valid LO value; :class:`ValueRejected` naming ``name`` and the limit otherwise."""
    _check_characters(value, name)
    if len(value) > LO_CHARACTERS:
        raise ValueRejected(f"{name}: {len(value)} characters, at most {LO_CHARACTERS} (LO, PS3.5 6.2)")
    return value


def encodable(value: str, python_encodings: list[str]) -> bool:
    """Can ``value`` be written with these Python codecs (pydicom's ``convert_encodings`` of an instance's Specific
    Character Set)? With several (ISO 2022 code extensions), each character needs one of them."""
    valid = [encoding for encoding in python_encodings if _codec_exists(encoding)]
    if not valid:
        return value.isascii()
    for encoding in valid:
        if _encodes(value, encoding):
            return True
    return len(valid) > 1 and all(any(_encodes(character, encoding) for encoding in valid) for character in value)


def _codec_exists(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding, "strict")
    except UnicodeError:
        return False
    return True
