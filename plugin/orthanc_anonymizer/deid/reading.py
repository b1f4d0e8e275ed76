"""Reading a DICOM file for anonymization: parsed whole, or its header only where the pixel data can go to the output
as the very bytes it came in (:class:`DicomInstance`); every element read at once, and a file cut short, damaged or
not DICOM refused with an :class:`InvalidDicomError` that names what is wrong, never quoting content."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.filereader import read_dataset as read_dataset_from_stream
from pydicom.filereader import read_sequence
from pydicom.sequence import Sequence
from pydicom.uid import UID
from pydicom.valuerep import VR

from orthanc_anonymizer.deid.elements import (
    ITEM_TAG_LE,
    PIXEL_DATA,
    TRAILING_PADDING,
    TRANSFER_SYNTAX_UID,
    UNDEFINED_LENGTH,
    tag_text,
)
from orthanc_anonymizer.deid.profiles import Action, Option, Profile
from orthanc_anonymizer.deid.writing import write_dataset
from orthanc_anonymizer.errors import AnonymizationError, InvalidDicomError


def read_dataset(data: bytes) -> Dataset:
    """Parse the DICOM file ``data``: a preamble, ``DICM`` and the file meta, or (as Orthanc accepts too) a bare data
    set without them, in Implicit or Explicit VR, either endianness.

    Raises :class:`InvalidDicomError` naming what is wrong, never quoting content.
    """
    return _parse(data, stop_before_pixels=False)[0]


def _parse(data: bytes, stop_before_pixels: bool) -> tuple[Dataset, int]:
    """The data set of ``data``, and where the parse stopped (at the pixel data with ``stop_before_pixels``)."""
    bare = len(data) < 132 or data[128:132] != b"DICM"
    if bare and not _starts_like_a_data_set(data):
        raise InvalidDicomError(
            "not a DICOM file: no 'DICM' prefix after a 128-byte preamble, and no data set element at its start"
        )
    try:
        stream = BytesIO(data)
        dataset = dcmread(stream, force=bare, stop_before_pixels=stop_before_pixels)
        position = stream.tell()
        meta = getattr(dataset, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is not None and not isinstance(syntax, str):  # several values: a damaged file meta
            raise InvalidDicomError("(0002,0010) Transfer Syntax UID: not one UID: the file meta is damaged")
        if syntax is not None and not _UID_FORM.fullmatch(syntax.strip("\x00 ")):
            # The one meta value the output keeps (the data set is written in it): it must be a UID, not text.
            raise InvalidDicomError("(0002,0010) Transfer Syntax UID: not a UID: the file meta is damaged")
        if meta is not None and syntax is not None and not isinstance(syntax, UID):
            # A UID written under another VR (CS, LO...) reads as plain text, which cannot say what syntax it names:
            # the element becomes the UI it should be (and is written so).
            meta[TRANSFER_SYNTAX_UID] = DataElement(TRANSFER_SYNTAX_UID, "UI", syntax.strip("\x00 "))
        # Read every element now: a truncated or malformed file must fail here, not half-way through the walk.
        for _ in _read_every_element(dataset):
            pass
        if stop_before_pixels and position < len(data):
            return dataset, position
        _check_complete(dataset, data)
    except InvalidDicomError:
        raise
    except PydicomInvalidDicomError as error:
        raise InvalidDicomError(f"not a valid DICOM file ({type(error).__name__})") from None
    except Exception as error:
        raise InvalidDicomError(f"damaged DICOM file: {type(error).__name__} while parsing") from None
    _check_instance(dataset)
    return dataset, position


def _check_instance(dataset: Dataset) -> None:
    if 0x00080018 not in dataset:
        # Orthanc refuses these too: it files every instance under its SOP Instance UID.
        raise InvalidDicomError("no SOP Instance UID (0008,0018): not an instance (a DICOMDIR?), or cut short")


def _starts_like_a_data_set(data: bytes) -> bool:
    """Whether ``data`` opens with a data element of group 0002 or 0008 (in either byte order), as every file
    without a preamble that DICOM toolkits (and Orthanc) read does: the file meta, or Specific Character Set and the
    other identifying attributes of group 0008."""
    return len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


@dataclass
class DicomInstance:
    """A DICOM file parsed for anonymization: its data set, and where its pixel data was left unparsed.

    When the profile leaves the pixels alone (no CleanPixelData, no rule for (7FE0,0010)) and removes whatever
    follows the Pixel Data element, only the header (and what follows) is parsed: the pixel data goes to the
    output as the very bytes pydicom would write for it, without being read into the data set or copied.
    """

    dataset: Dataset
    data: bytes
    pixel_offset: int | None = None
    """Where the unparsed (7FE0,0010) element starts in ``data``; ``None``: the file was parsed whole."""
    pixel_end: int | None = None
    """Where it ends; elements after it were parsed into :attr:`dataset` (the profile removes them all)."""

    def output_parts(self) -> list[bytes | memoryview]:
        """The anonymized file, in pieces to write one after the other (the pixel data is not copied).

        Raises :class:`AnonymizationError` when the data set cannot be written.
        """
        tags = self.dataset.keys()  # as ints below: a BaseTag's > converts the other side to a Tag
        if self.pixel_offset is not None and any(tag >> 16 >= 0x7FE0 and int(tag) > PIXEL_DATA for tag in tags):
            # Cannot happen (the profile removes every element after the pixel data, the engine adds none there);
            # but one written before the spliced pixel data would be out of order.
            raise AnonymizationError("internal error: an attribute after the pixel data")
        try:
            header = write_dataset(self.dataset)
        except Exception as error:
            raise AnonymizationError(f"could not write the anonymized instance: {type(error).__name__}") from None
        if self.pixel_offset is None:
            return [header]
        return [header, memoryview(self.data)[self.pixel_offset : self.pixel_end]]

    def output_bytes(self) -> bytes:
        """The anonymized file as one ``bytes``."""
        return b"".join(self.output_parts())


def read_instance(data: bytes, profile: Profile) -> DicomInstance:
    """Parse ``data`` for anonymization under ``profile``: the header only, where the pixel data can go to the
    output untouched (see :class:`DicomInstance`); otherwise the whole file, as :func:`read_dataset`.

    Raises :class:`InvalidDicomError` exactly where :func:`read_dataset` would.
    """
    if not _pixels_pass_through(profile):
        return DicomInstance(read_dataset(data), data)
    try:
        header, position = _parse(data, stop_before_pixels=True)
    except InvalidDicomError:
        return DicomInstance(read_dataset(data), data)  # the full parse says what is wrong, in its own words
    if position >= len(data):
        return DicomInstance(header, data)  # no pixel data: parsed whole, and checked as read_dataset does
    end = _pixel_data_end(header, data, position)
    if end is None or (end < len(data) and not _read_trailer(header, data, end, profile)):
        return DicomInstance(read_dataset(data), data)
    _check_instance(header)
    return DicomInstance(header, data, position, end)


def _pixels_pass_through(profile: Profile) -> bool:
    """Whether ``profile`` leaves (7FE0,0010) as it is: no CleanPixelData and no rule or table row for it."""
    return Option.CleanPixelData not in profile.options and profile.action_table.action_for(PIXEL_DATA) is None


_PIXEL_TAG_BYTES = {True: b"\xe0\x7f\x10\x00", False: b"\x7f\xe0\x00\x10"}  # by little endian


def _pixel_data_end(header: Dataset, data: bytes, offset: int) -> int | None:
    """Where the Pixel Data element that starts at ``offset`` (where the header stopped) ends, when pydicom would
    write it back byte for byte (see :func:`write_dataset`); ``None`` otherwise (then the file is parsed whole).

    pydicom writes Pixel Data with its value padded to an even length, with an undefined length (then
    encapsulated, closed by a Sequence Delimiter of length 0) exactly when the transfer syntax is compressed,
    and, in explicit VR, with the VR read from the file; a file that differs in any of these is parsed whole.
    """
    implicit, little = header.original_encoding
    if implicit is None or little is None:
        return None
    meta = getattr(header, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_private or not syntax.is_transfer_syntax or syntax.is_deflated:
        return None
    if (syntax.is_implicit_VR, syntax.is_little_endian) != (implicit, little):
        return None  # pydicom writes in the transfer syntax's encoding, not the one the file was read in
    if data[offset : offset + 4] != _PIXEL_TAG_BYTES[little]:
        return None
    order = "<" if little else ">"
    if implicit:
        if not little or syntax.is_compressed or offset + 8 > len(data):
            return None
        (length,) = struct.unpack_from(order + "I", data, offset + 4)
        value = offset + 8
    else:
        if data[offset + 4 : offset + 6] not in (b"OB", b"OW") or data[offset + 6 : offset + 8] != b"\x00\x00":
            return None
        if offset + 12 > len(data):
            return None
        (length,) = struct.unpack_from(order + "I", data, offset + 8)
        value = offset + 12
    if length == UNDEFINED_LENGTH:
        if not (little and syntax.is_compressed and data[value : value + 4] == ITEM_TAG_LE):
            return None
        # pydicom reads the items one by one, to the Sequence Delimiter, which must have length 0.
        position = value
        while data[position : position + 4] == ITEM_TAG_LE and position + 8 <= len(data):
            (item_length,) = struct.unpack_from("<I", data, position + 4)
            if item_length == UNDEFINED_LENGTH:
                return None
            position += 8 + item_length
        if data[position : position + 8] != _SEQUENCE_DELIMITER:
            return None
        return position + 8
    if syntax.is_compressed or length % 2 or value + length > len(data):
        return None
    return value + int(length)


def _read_trailer(header: Dataset, data: bytes, start: int, profile: Profile) -> bool:
    """Parse the elements after the pixel data (e.g. (FFFC,FFFC) Data Set Trailing Padding, (FFFA,FFFA) Digital
    Signatures Sequence) into ``header``, where the engine handles them like any other; ``True`` when every one
    of them is public and removed (X) by ``profile``, so that nothing is written after the pixel data."""
    implicit, little = header.original_encoding
    stream = BytesIO(data)
    stream.seek(start)
    try:
        trailer = read_dataset_from_stream(stream, bool(implicit), bool(little))
    except Exception:
        return False
    tags = list(trailer.keys())
    if not tags or any(tag <= PIXEL_DATA or tag.is_private or tag in header for tag in tags):
        return False
    if any(tag != TRAILING_PADDING and profile.action_table.action_for(tag) is not Action.X for tag in tags):
        return False
    for tag in tags:
        header[tag] = trailer.get_item(tag)
    try:
        for _ in _read_every_element(header, tags):
            pass
        _check_complete(header, data)
    except Exception:
        for tag in tags:
            del header[tag]
        return False
    return True


_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _check_complete(dataset: Dataset, data: bytes) -> None:
    """The last attribute of the data set must end where the file ends; pydicom silently stops at a header
    that was cut in half, and reads an encapsulated pixel data without its closing delimiter."""
    tags = list(dataset.keys())
    if not tags:
        return
    last = dataset.get_item(tags[-1])
    if not isinstance(last, RawDataElement) or last.value_tell is None:
        return
    if last.length == UNDEFINED_LENGTH:
        if tags[-1] in _PIXEL_TAGS and isinstance(last.value, bytes):
            end = last.value_tell + len(last.value)
            if data[end : end + 8] != _SEQUENCE_DELIMITER:
                raise InvalidDicomError(f"{tag_text(tags[-1])}: no closing delimiter: the file is cut short")
        return
    end = last.value_tell + last.length
    if end < len(data):
        raise InvalidDicomError(f"{len(data) - end} bytes after the last complete attribute: the file is cut short")


_KNOWN_VRS = frozenset(vr.value for vr in VR)
_UID_FORM = re.compile(r"[0-9]{1,39}(?:\.[0-9]{1,39}){1,31}")


def _read_every_element(dataset: Dataset, tags: Iterable[int] | None = None) -> Iterator[int]:
    # The elements as stored (raw or converted), without a look-up per tag: this runs over every element read.
    elements = list(dataset.values()) if tags is None else [dataset.get_item(tag) for tag in tags]
    for element in elements:
        tag = element.tag
        if isinstance(element, RawDataElement):
            if (
                element.length != UNDEFINED_LENGTH
                and isinstance(element.value, bytes)
                and len(element.value) < element.length
            ):
                raise InvalidDicomError(
                    f"{tag_text(tag)}: {len(element.value)} of its {element.length} bytes present: the file is cut "
                    "short"
                )
            if element.VR is not None and element.VR not in _KNOWN_VRS:
                # Written back as it was read, it would not even take two bytes (a non-ASCII VR is encoded longer)
                raise InvalidDicomError(f"{tag_text(tag)}: not a value representation of PS3.5: the file is damaged")
            descend = element.VR in ("SQ", None, "UN")
        else:
            descend = element.VR == "SQ"
        if descend:
            try:
                value = dataset[tag].value
            except KeyError:
                continue
            if isinstance(value, Sequence):
                for item in value:
                    yield from _read_every_element(item)
        yield tag


def sequence_in_unknown(value: bytes, encoding: str | list[str]) -> Sequence | None:
    """The items of a UN value that holds a sequence (PS3.5 6.2.2: implicit VR little endian), every element read;
    ``None`` when it is no sequence (it must begin with an item tag and parse to its end)."""
    if not value.startswith(ITEM_TAG_LE):
        return None
    try:
        sequence = read_sequence(BytesIO(value), True, True, len(value), encoding)
        for item in sequence:
            for _ in _read_every_element(item):
                pass
    except Exception:
        return None
    return sequence
