"""Small facts about one element: its VR as read, whether the data dictionary knows its tag, its value as text for
a report, its tag as ``GGGG,EEEE``; and the few tags and byte patterns reading and writing share."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

PIXEL_DATA = 0x7FE00010
# Data Set Trailing Padding (PS3.10 7.2): bytes with no meaning, that may hold anything; never copied.
TRAILING_PADDING = 0xFFFCFFFC
UNDEFINED_LENGTH = 0xFFFFFFFF
TRANSFER_SYNTAX_UID = 0x00020010
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
"""The VRs whose value is bytes, whatever they hold."""
ITEM_TAG_LE = b"\xfe\xff\x00\xe0"
"""An Item tag (FFFE,E000) in little endian: how a sequence's first item begins."""


def is_overlay_data(tag: int) -> bool:
    """Overlay Data (60xx,3000) of a repeating group 6000-601E."""
    return tag & 0xFFFF == 0x3000 and 0x6000 <= tag >> 16 < 0x6020 and not tag >> 16 & 1


def is_private_creator(tag: int) -> bool:
    """A private creator element (gggg,0010-00FF of an odd group), by integer arithmetic (no Tag conversion)."""
    return bool(tag >> 16 & 1) and 0x0010 <= tag & 0xFFFF < 0x0100


@lru_cache(maxsize=4096)
def keyword_of(tag: int) -> str:
    """pydicom's ``keyword_for_tag`` (empty for a tag it does not name), looked up once per tag."""
    return keyword_for_tag(tag)


@lru_cache(maxsize=4096)
def known_tag(tag: int) -> bool:
    """Whether pydicom's data dictionary (repeating groups included) names this public tag."""
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True


def stored_element(dataset: Dataset, tag: int) -> DataElement | RawDataElement | None:
    """``dataset.get_item(tag)``, the element as stored (raw or converted), for the hot loops: ``tag`` a key of
    ``dataset`` (a BaseTag the dataset holds) is found by identity, where ``get_item`` first makes it a Tag. A
    deferred element (its value not read yet) goes through ``get_item``, which reads it."""
    element = dataset._dict.get(tag)  # type: ignore[call-overload]
    if isinstance(element, RawDataElement) and element.value is None:
        return dataset.get_item(tag)
    return element  # type: ignore[no-any-return]


def vr_of(dataset: Dataset, tag: int) -> str:
    element = stored_element(dataset, tag)
    vr = getattr(element, "VR", None)
    if vr:
        return str(vr)
    try:
        return (
            str(dictionary_VR(tag)).split(" ")[0]
            if dictionary_VR(tag) not in ("OB or OW", "US or SS")
            else str(dataset[tag].VR)
        )
    except KeyError:
        return "UN"


def element_text(element: DataElement | RawDataElement | None) -> str:
    if element is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    return "" if value is None else str(value).strip()


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 64 else f"<{len(value)} bytes>"
    if isinstance(value, Sequence):
        return f"<{len(value)} items>"
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value)
    return str(value)  # PersonName, str and numbers


def tag_text(tag: int) -> str:
    return f"{tag >> 16:04X},{tag & 0xFFFF:04X}"
