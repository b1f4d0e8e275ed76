"""Where the data set of a written file ends, read from its bytes: element by element, lengths only, values skipped.
The residual-PHI check (:mod:`.verify`) searches what comes after it (bytes outside any attribute: copied trailing
padding, a second data set, anything appended) apart from the attributes."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from pydicom.valuerep import VR

_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_ALL_VRS = frozenset(vr.value.encode() for vr in VR)
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_MAX_DEPTH = 200


def bytes_after_data_set(parts: Sequence[bytes | memoryview], syntax: object, known: set[int]) -> bytes:
    """The bytes of a file (in ``parts``, written one after the other) after its last whole data element, read
    element by element from the end of the preamble: the file meta, then the data set in ``syntax``'s encoding (a
    deflated one inflated first), up to the first top-level element whose tag is not in ``known``, not in
    ascending order, or not whole. Empty for a file that ends with its data set."""
    if not parts or bytes(parts[0][128:132]) != b"DICM":
        return b""
    uid = str(syntax or "")
    implicit, little = uid == "1.2.840.10008.1.2", uid != "1.2.840.10008.1.2.2"
    position, previous = 132, -1
    for index, part in enumerate(parts):
        data = memoryview(part)
        if index == 0:
            # The file meta: always Explicit VR Little Endian, group 0002 only.
            while True:
                found = _element_end(data, position, False, True, 0)
                if found is None or found[0] >> 16 != 0x0002 or found[0] <= previous:
                    break
                previous, position = found
            if uid == "1.2.840.10008.1.2.1.99":
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                try:
                    inflated = inflater.decompress(bytes(data[position:])) + inflater.flush()
                except zlib.error:
                    return b"".join([data[position:], *parts[1:]])
                end = _data_set_end(memoryview(inflated), 0, False, True, -1, known)[0]
                return inflated[end:] + inflater.unused_data
        else:
            position = 0
        position, previous = _data_set_end(data, position, implicit, little, previous, known)
        if position < len(data):
            return b"".join([data[position:], *parts[index + 1 :]])
    return b""


def _data_set_end(
    data: memoryview, position: int, implicit: bool, little: bool, previous: int, known: set[int]
) -> tuple[int, int]:
    """(end, last tag) of the run of whole data elements with ``known`` tags, in ascending order, from
    ``position``."""
    while True:
        found = _element_end(data, position, implicit, little, 0)
        if found is None or found[0] <= previous or found[0] not in known:
            return position, previous
        previous, position = found


def _element_end(data: memoryview, position: int, implicit: bool, little: bool, depth: int) -> tuple[int, int] | None:
    """(tag, end) of the whole data element (or item, or delimiter) that starts at ``position``; ``None`` when no
    whole one does. Only lengths are read: values are skipped, sequences of undefined length walked to their
    delimiter (in Implicit VR inside an explicit UN, PS3.5 6.2.2)."""
    order = "<" if little else ">"
    if position + 8 > len(data) or depth > _MAX_DEPTH:
        return None
    group, element = struct.unpack_from(order + "HH", data, position)
    tag = group << 16 | element
    vr = b""
    if implicit or group == 0xFFFE:
        (length,) = struct.unpack_from(order + "I", data, position + 4)
        value = position + 8
    else:
        vr = bytes(data[position + 4 : position + 6])
        if vr not in _ALL_VRS:
            return None
        if vr in _LONG_VRS:
            if position + 12 > len(data):
                return None
            (length,) = struct.unpack_from(order + "I", data, position + 8)
            value = position + 12
        else:
            (length,) = struct.unpack_from(order + "H", data, position + 6)
            value = position + 8
    if length != _UNDEFINED:
        return (tag, value + length) if value + length <= len(data) else None
    if group == 0xFFFE:
        if tag != _ITEM:
            return None
        # An item of undefined length: data elements up to its delimiter.
        while True:
            found = _element_end(data, value, implicit, little, depth + 1)
            if found is None:
                return None
            if found[0] == _ITEM_DELIMITER:
                return tag, found[1]
            value = found[1]
    nested_implicit = implicit or vr == b"UN"
    while True:  # a sequence (or encapsulated pixel data) of undefined length: items up to its delimiter
        found = _element_end(data, value, nested_implicit, little, depth + 1)
        if found is None or found[0] not in (_ITEM, _SEQUENCE_DELIMITER):
            return None
        if found[0] == _SEQUENCE_DELIMITER:
            return tag, found[1]
        value = found[1]
