"""Checks on values the engine keeps or rewrites: kept text that holds binary bytes (a damaged length), dates and
times of their VR's form, numbers, Specific Character Set terms, text under a tag whose attribute is binary."""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from typing import Any

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from orthanc_anonymizer.deid.actions import STRING_VRS
from orthanc_anonymizer.deid.elements import stored_element, tag_text
from orthanc_anonymizer.errors import AnonymizationError

NUMBER_FORMATS = {"FL": "f", "FD": "d", "US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q"}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


_TEMPORAL_FORMS = {
    # PS3.5 6.2 (TM also in the ACR-NEMA form with colons, which pydicom reads); values padded with spaces
    "DA": re.compile(r"\d{8}|\d{4}\.\d{2}\.\d{2}"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
    "TM": re.compile(r"\d{2}(:?\d{2}(:?\d{2}(\.\d{1,6})?)?)?"),
}


def temporal_values_valid(value: Any, vr: str) -> bool:
    """Whether every value of a DA, DT or TM element is empty or has its VR's form."""
    if value is None:
        return True
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    form = _TEMPORAL_FORMS[vr]
    for item in items:
        text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
        text = text.strip(" \x00")
        if text and (len(text) > 26 or not form.fullmatch(text)):
            return False
    return True


# Bytes that never occur in a text value of any character set DICOM allows (ESC, CR, LF, TAB and FF do).
_NOT_TEXT = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_NOT_UID = re.compile(rb"[^0-9.\\ ]")
_CHECKED_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"}
)


def check_kept_value(dataset: Dataset, tag: int, vr: str) -> None:
    """Refuse an instance whose kept text holds binary bytes: the sign of a damaged length that swallowed the
    following attributes (and whatever identifying values they carried) into this one."""
    if vr != "UI" and vr not in _CHECKED_TEXT_VRS:
        return
    element = stored_element(dataset, tag)
    raw = element.value if isinstance(element, RawDataElement) else None
    if raw is None:
        value = dataset[tag].value
        if value is None or isinstance(value, bytes):
            return
        items = value if isinstance(value, MultiValue | list) else [value]
        raw = "\\".join(str(item) for item in items).encode("utf-8", "replace")
    if not isinstance(raw, bytes):
        return
    text = raw.rstrip(b"\x00 ") if vr == "UI" else raw
    if (_NOT_UID if vr == "UI" else _NOT_TEXT).search(text):
        raise AnonymizationError(f"{tag_text(tag)}: value holds bytes not valid for {vr}; the file looks damaged")


def number_bytes(value: Any, vr: str) -> bytes:
    """The little-endian bytes of a binary number value (as an implicit VR file stored them)."""
    items = value if isinstance(value, MultiValue | list | tuple) else [] if value is None else [value]
    try:
        return struct.pack(f"<{len(items)}{NUMBER_FORMATS[vr]}", *items)
    except (struct.error, TypeError):
        return b""


def character_set_term(value: str) -> str | None:
    """``value`` as a defined term of Specific Character Set (an empty first value is one too), or ``None``."""
    term = value.strip(" \x00")
    if term == "":
        return ""
    for candidate in (term, re.sub(r"^ISO[ _-]?IR[ _-]?", "ISO_IR ", term.upper()), term.upper().replace("_", " ")):
        if candidate in python_encoding:
            return candidate
    return None


@lru_cache(maxsize=4096)
def text_where_none_belongs(tag: int, vr: str) -> bool:
    """Whether an element read with ``vr`` (from an explicit VR file) holds a name where its tag's attribute has
    none, or text where its tag's attribute is binary, by pydicom's data dictionary."""
    if vr not in STRING_VRS:
        return False
    try:
        expected = set(str(dictionary_VR(tag)).split(" or "))
    except KeyError:
        return False
    if vr == "PN":
        return "PN" not in expected
    return not expected & STRING_VRS


@lru_cache(maxsize=4096)
def is_leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
