"""Writing an anonymized instance: the file meta rebuilt from the data set and this implementation (PS3.10 7.1), the
preamble zeroed, and the bytes pydicom's ``save_as(enforce_file_format=True)`` gives, written faster where it can."""

from __future__ import annotations

import struct
from collections.abc import Callable
from copy import copy
from io import BytesIO
from typing import Any

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import Tag, tag_in_exception
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from orthanc_anonymizer import __version__
from orthanc_anonymizer.deid.elements import (
    PIXEL_DATA,
    TRANSFER_SYNTAX_UID,
    UNDEFINED_LENGTH,
    element_text,
    stored_element,
)
from orthanc_anonymizer.deid.pydicom_private import text_encodings
from orthanc_anonymizer.errors import AnonymizationError

_SOP_CLASS_UID = 0x00080016
# VRs whose one str value pydicom writes as it is (ASCII, no character set), padded to even length: with a NUL (UI)
# or a space (the others). Text VRs depend on the character set, and go through pydicom.
_PLAIN_STRING_VRS = frozenset({"UI", "CS", "DA", "TM", "DT", "AS"})
_UI_PADDING = "\x00"
OUTPUT_PREAMBLE = bytes(128)
"""The preamble of every output file: the input's 128 bytes are outside the data set, unchecked, never copied."""
# The file meta is rebuilt (see rebuild_file_meta): its version, the SOP class and instance of the data set,
# the transfer syntax, and this implementation; whatever else the sender wrote there (AE titles, addresses, private
# information, the sender's implementation) is dropped. A fixed UID under 2.25 (a UUID-5 of the project's name).
IMPLEMENTATION_CLASS_UID = "2.25.204713763176700266180703222117306360813"
# What the rebuilt meta does to each element of the input's (for the report): K kept, U follows the new SOP Instance
# UID, D written by the engine; any other element is removed (X).
_META_REBUILT = {
    0x00020000: "D",
    0x00020001: "D",
    0x00020002: "D",
    0x00020003: "U",
    TRANSFER_SYNTAX_UID: "K",
    0x00020012: "D",
    0x00020013: "D",
}
_SYNTAX_OF_ENCODING = {
    (True, True): "1.2.840.10008.1.2",  # Implicit VR Little Endian
    (False, True): "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    (False, False): "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still read and written)
}
IMPLEMENTATION_VERSION_NAME = ("OANON_" + __version__)[:16]


def rebuild_file_meta(dataset: Dataset, uid: Callable[[str], str], record: Callable[[int, str, Dataset], None]) -> None:
    """Rebuild the file meta (PS3.10 7.1) from the data set and this implementation, and zero the preamble.

    Kept from the input: only the Transfer Syntax UID (the data set is written in it); where the input had no
    file meta, the encoding it was read in names it. Everything else the sender wrote outside the data set
    (AE titles, presentation addresses, private information, its implementation's UID and name) is dropped.
    ``uid`` is the keyed hash of a UID; ``record(tag, action, meta)`` hears what happens to each element of the
    input's meta, before it goes.
    """
    dataset.preamble = OUTPUT_PREAMBLE
    meta = getattr(dataset, "file_meta", None)
    if meta is None:
        meta = dataset.file_meta = FileMetaDataset()
    syntax = meta.get(TRANSFER_SYNTAX_UID)
    # The data set's SOP Class and Instance UIDs as the walk left them; where a rule removed one, the meta's,
    # through the keyed hash as any UID (a standard one comes back unchanged).
    sop_class = element_text(dataset.get(_SOP_CLASS_UID)) or uid(element_text(meta.get(0x00020002)))
    if 0x00080018 in dataset and not element_text(dataset.get(0x00080018)):
        raise AnonymizationError(
            "0008,0018 SOP Instance UID: the rule for it leaves it empty, and a DICOM file needs one "
            "(use U for a new UID, or X)"
        )
    sop_instance = element_text(dataset.get(0x00080018)) or uid(element_text(meta.get(0x00020003)))
    for tag in list(meta.keys()):
        action = _META_REBUILT.get(tag, "X")
        record(tag, action, meta)
        del meta[tag]
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    if syntax is not None:
        meta[TRANSFER_SYNTAX_UID] = syntax
    else:
        implicit, little = dataset.original_encoding
        meta.TransferSyntaxUID = _SYNTAX_OF_ENCODING.get(
            (bool(implicit), bool(little)), _SYNTAX_OF_ENCODING[True, True]
        )
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME


def write_dataset(dataset: Dataset) -> bytes:
    """Serialise ``dataset`` as a DICOM file in its own transfer syntax: the bytes of pydicom's
    ``save_as(enforce_file_format=True)``, with the elements still as read written straight from their bytes."""
    fast = _write_plainly(dataset)
    if fast is not None:
        return fast
    dataset.preamble = OUTPUT_PREAMBLE  # never the input's (see rebuild_file_meta)
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _write_plainly(dataset: Dataset) -> bytes | None:
    """``dcmwrite(enforce_file_format=True)`` for the common case (a public transfer syntax, the data set in the
    encoding and character set it was read in, no Pixel Data left in it), with its element loop
    (:func:`pydicom.filewriter.write_dataset`) writing each unconverted element in one piece instead of through
    :func:`~pydicom.filewriter.write_data_element`; ``None`` for anything else (pydicom then writes it all).
    test_engine_pixel_splice.py compares the two on every pydicom test file."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if (
        meta is None
        or syntax is None
        or syntax.is_private
        or not syntax.is_transfer_syntax
        or syntax.is_deflated
        or PIXEL_DATA in dataset
    ):
        return None
    encoding = (bool(syntax.is_implicit_VR), bool(syntax.is_little_endian))
    if encoding == (True, False) or encoding != dataset.original_encoding:
        return None
    if dataset.original_character_set != text_encodings(dataset):
        return None
    keys = sorted(dataset.keys(), key=int)  # as ints: a BaseTag's < converts the other side to a Tag
    if any(tag >> 16 in (0, 2) for tag in keys):
        return None
    implicit, little = encoding
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    fp.write(OUTPUT_PREAMBLE)
    fp.write(b"DICM")
    # What dcmwrite does to the file meta with enforce_file_format: the data set's SOP Class and Instance UIDs
    # replace the meta's where they differ.
    replaced: dict[int, Any] = {}  # the data set's values, as pydicom gives them
    for meta_tag, keyword in ((0x00020002, "SOPClassUID"), (0x00020003, "SOPInstanceUID")):
        meta_value = meta.get(meta_tag)
        meta_value = None if meta_value is None else meta_value.value
        ds_value = dataset.get(keyword, None)
        if meta_value is None or (ds_value and ds_value != meta_value):
            replaced[meta_tag] = ds_value
    meta_bytes = _meta_plainly({int(element.tag): element for element in meta.values()}, replaced)
    if meta_bytes is not None:
        fp.write(meta_bytes)
    else:
        # pydicom's way, on a copy of each element with the encoding the meta was read in (dcmwrite deep-copies the
        # whole meta: ~120 deepcopy calls an instance for 8 elements); dcmwrite validates the meta, and
        # write_file_meta_info again (the same checks, the same additions): once.
        file_meta = FileMetaDataset()
        for element in meta.values():
            file_meta[element.tag] = copy(element)
        implicit_meta, little_meta = meta.original_encoding
        file_meta.set_original_encoding(implicit_meta, little_meta, meta.original_character_set)
        if 0x00020002 in replaced:
            file_meta.MediaStorageSOPClassUID = replaced[0x00020002]
        if 0x00020003 in replaced:
            file_meta.MediaStorageSOPInstanceUID = replaced[0x00020003]
        write_file_meta_info(fp, file_meta, enforce_standard=True)
    order = "<" if little else ">"
    charset = dataset.get("SpecificCharacterSet", default_encoding)
    write = fp.write
    for tag in keys:
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        element = stored_element(dataset, tag)
        assert element is not None  # one of the data set's keys
        value = element.value
        vr = element.VR
        data: bytes | None = None
        if isinstance(element, RawDataElement):
            if (
                isinstance(value, bytes)
                and element.length != UNDEFINED_LENGTH
                and (implicit or (vr is not None and (vr in EXPLICIT_VR_LENGTH_32 or len(value) <= 0xFFFF)))
            ):
                data = value
        elif vr in _PLAIN_STRING_VRS and isinstance(value, str) and value.isascii() and len(value) < 0xFFFF:
            data = _padded_ascii(value, vr)
        if data is not None:
            write(_element_header(tag, vr, len(data), implicit, order))
            write(data)
        else:
            with tag_in_exception(Tag(tag)):
                write_data_element(fp, element, charset)
    return fp.getvalue()


# The file meta elements write_file_meta_info(enforce_standard=True) requires with a value (it adds 0002,0001 and
# 0002,0012 when they are missing or empty, and 0002,0013 when missing: then pydicom writes the meta).
_META_REQUIRED = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)
_META_GROUP_LENGTH = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<H", 4)


def _meta_plainly(elements: dict[int, DataElement | RawDataElement], replaced: dict[int, object]) -> bytes | None:
    """The file meta as ``write_file_meta_info(enforce_standard=True)`` writes it (Explicit VR Little Endian, its
    group length first), for a meta of set values (what :func:`rebuild_file_meta` leaves): one ASCII ``str`` of
    a :data:`_PLAIN_STRING_VRS` VR, SH or AE, or ``bytes`` of OB; ``replaced`` gives the values dcmwrite takes from
    the data set. ``None`` for anything else (pydicom then writes it, and says what is missing)."""
    values: dict[int, object] = {}
    vrs: dict[int, str] = {}
    for tag, element in elements.items():
        if isinstance(element, RawDataElement) or tag >> 16 != 0x0002:
            return None
        values[tag], vrs[tag] = element.value, element.VR
    for tag, value in replaced.items():
        values[tag], vrs[tag] = value, "UI"
    if any(not values.get(tag) for tag in _META_REQUIRED) or 0x00020013 not in values:
        return None
    body = bytearray()
    for tag in sorted(values):
        if tag == 0x00020000:
            continue  # written first, with the length of the rest
        value, vr = values[tag], vrs[tag]
        if isinstance(value, str) and (vr in _PLAIN_STRING_VRS or vr in ("SH", "AE")) and value.isascii():
            data = _padded_ascii(value, vr)
        elif isinstance(value, bytes) and vr == "OB":
            data = value + b"\x00" * (len(value) % 2)
        else:
            return None
        if vr not in EXPLICIT_VR_LENGTH_32 and len(data) > 0xFFFF:
            return None
        body += _element_header(tag, vr, len(data), False, "<") + data
    return _META_GROUP_LENGTH + struct.pack("<I", len(body)) + bytes(body)


def _padded_ascii(value: str, vr: str | None) -> bytes:
    """What pydicom's ``write_string`` (write_UI, write_DA, write_TM...) writes for one ASCII value: it, padded to
    even length with a NUL (UI) or a space."""
    return (value + (_UI_PADDING if vr == "UI" else " ") * (len(value) % 2)).encode("ascii")


def _element_header(tag: int, vr: str | None, length: int, implicit: bool, order: str) -> bytes:
    """A data element's tag, VR (explicit VR only) and value length, in byte ``order`` (``<`` or ``>``)."""
    tag_format, short_format, long_format = _FORMATS[order]
    header = tag_format.pack(tag >> 16, tag & 0xFFFF)
    if implicit:
        return header + long_format.pack(length)
    assert vr is not None  # explicit VR: every element the writers give here has one
    if vr in EXPLICIT_VR_LENGTH_32:
        return header + vr.encode() + b"\x00\x00" + long_format.pack(length)
    return header + vr.encode() + short_format.pack(length)


_FORMATS = {  # by byte order: the tag, a short length, a long length
    order: (struct.Struct(order + "HH"), struct.Struct(order + "H"), struct.Struct(order + "I")) for order in "<>"
}
