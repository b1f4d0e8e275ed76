"""The header-only read (pixel data spliced through untouched) writes exactly what the full parse writes.

(And the engine's writer, which writes elements still as read in one piece, exactly what pydicom's writes.)

The full path parses the whole file, anonymizes and lets pydicom write everything; the fast path parses the header,
anonymizes it and appends the original Pixel Data element's bytes. Both must give the same bytes (or fail the same
way) for every file: pydicom's own test files, a generated CT, and files built to sit at the edges (implicit VR,
big endian, encapsulated, odd lengths, elements after the pixel data, options and rules that touch the pixels).
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from orthanc_anonymizer.deid import writing
from orthanc_anonymizer.deid.engine import (
    AnonymizationSettings,
    anonymize_bytes,
    anonymize_dataset,
    read_dataset,
    read_instance,
    write_dataset,
)
from orthanc_anonymizer.deid.profiles import Action, Profile, Rule, TagPattern, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.writing import _meta_plainly as meta_plainly
from orthanc_anonymizer.deid.writing import _write_plainly
from orthanc_anonymizer.errors import AnonymizerError

SECRET = b"splice secret"
PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"


def settings(profile: Profile | None = None) -> AnonymizationSettings:
    return AnonymizationSettings(profile=profile or basic_profile(), hasher=KeyedHasher(SECRET))


def full_path(data: bytes, config: AnonymizationSettings) -> bytes | str:
    """What the engine wrote before the header-only read: parse all, anonymize, write all."""
    try:
        dataset = read_dataset(data)
        anonymize_dataset(dataset, config)
        buffer = BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)  # pydicom's writer, not the engine's
        return buffer.getvalue()
    except AnonymizerError as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:
        return f"could not write: {type(error).__name__}"


def fast_path(data: bytes, config: AnonymizationSettings) -> bytes | str:
    try:
        return anonymize_bytes(data, config)[0]
    except AnonymizerError as error:
        message = str(error)
        if message.startswith("could not write"):
            return f"could not write: {message.rsplit(': ', 1)[-1]}"
        return f"{type(error).__name__}: {error}"


def assert_same(data: bytes, config: AnonymizationSettings) -> None:
    old, new = full_path(data, config), fast_path(data, config)
    assert type(old) is type(new)
    if isinstance(old, str):
        assert new == old
    else:
        assert new == old, "the header-only read wrote other bytes than the full parse"


def file_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct(syntax: str = ExplicitVRLittleEndian, rows: int = 64, **attributes: object) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Splice^Petra"
    ds.PatientID = "SPLICE-1"
    ds.StudyDate = "20240102"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.random.default_rng(3).integers(0, 4096, rows * rows, dtype=np.uint16).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


PYDICOM_FILES = sorted(str(path) for path in get_testdata_files("*.dcm"))


OPTIONS = ["RetainSafePrivate", "RetainUIDs", "RetainLongModifDates", "CleanDesc", "CleanStructdCont", "CleanGraph"]


@pytest.mark.parametrize("options", [[], OPTIONS], ids=["basic", "options"])
@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda path: path.rsplit("/", 1)[-1])
def test_every_pydicom_test_file_is_written_as_the_full_parse_writes_it(path: str, options: list[str]) -> None:
    with open(path, "rb") as handle:
        data = handle.read()
    assert_same(data, settings(basic_profile(options)))


def test_most_pydicom_test_files_go_the_fast_way() -> None:
    fast = 0
    for path in PYDICOM_FILES:
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            fast += read_instance(data, basic_profile()).pixel_offset is not None
        except AnonymizerError:
            continue
    assert fast >= len(PYDICOM_FILES) // 2


def test_the_generated_ct_goes_the_fast_way_and_writes_the_same_bytes() -> None:
    data = file_bytes(ct(rows=512))
    instance = read_instance(data, basic_profile())
    assert instance.pixel_offset is not None
    assert 0x7FE00010 not in instance.dataset
    assert data[instance.pixel_offset : instance.pixel_offset + 4] == PIXEL_TAG_LE
    assert_same(data, settings())


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_native_encodings_go_the_fast_way(syntax: str) -> None:
    ds = ct(syntax)
    if syntax == ExplicitVRBigEndian:
        ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").astype(">u2").tobytes()
    data = file_bytes(ds)
    assert read_instance(data, basic_profile()).pixel_offset is not None
    assert_same(data, settings())


def test_encapsulated_pixel_data_goes_the_fast_way() -> None:
    path = get_testdata_file("JPEG2000.dcm")
    assert path is not None
    with open(path, "rb") as handle:
        data = handle.read()
    assert dcmread(BytesIO(data)).file_meta.TransferSyntaxUID.is_compressed
    assert read_instance(data, basic_profile()).pixel_offset is not None
    assert_same(data, settings())


def test_a_sequence_delimiter_with_a_length_fails_as_before() -> None:
    path = get_testdata_file("SC_rgb_rle.dcm")
    assert path is not None
    with open(path, "rb") as handle:
        data = handle.read()
    assert dcmread(BytesIO(data)).file_meta.TransferSyntaxUID == RLELossless
    assert data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    odd = data[:-4] + b"\x04\x00\x00\x00"
    assert_same(odd, settings())  # both refuse it


def test_pixel_data_with_an_odd_length_is_not_spliced() -> None:
    data = file_bytes(ct())
    offset = data.rindex(PIXEL_TAG_LE)
    (length,) = struct.unpack_from("<I", data, offset + 8)
    odd = data[: offset + 8] + struct.pack("<I", length - 1) + data[offset + 12 : -1]
    assert read_instance(odd, basic_profile()).pixel_offset is None
    assert_same(odd, settings())


@pytest.mark.parametrize(
    "trailer",
    [
        # (FFFC,FFFC) Data Set Trailing Padding, OB
        b"\xfc\xff\xfc\xffOB\x00\x00" + struct.pack("<I", 6) + b"Petra\x00",
        # (FFFA,FFFA) Digital Signatures Sequence with one item holding a name, explicit lengths
        b"\xfa\xff\xfa\xffSQ\x00\x00"
        + struct.pack("<I", 8 + 8 + 12)
        + b"\xfe\xff\x00\xe0"
        + struct.pack("<I", 8 + 12)
        + b"\x10\x00\x10\x00PN"
        + struct.pack("<H", 12)
        + b"Splice^Petra",
    ],
    ids=["trailing-padding", "digital-signatures"],
)
def test_elements_after_the_pixel_data_go_through_the_profile(trailer: bytes) -> None:
    data = file_bytes(ct()) + trailer
    instance = read_instance(data, basic_profile())
    assert instance.pixel_offset is not None
    assert instance.pixel_end == len(data) - len(trailer)
    assert_same(data, settings())
    output = anonymize_bytes(data, settings())[0]
    assert b"Petra" not in output
    assert not output.endswith(trailer)
    # A rule that keeps them: the file is parsed whole, and they are written after the pixel data as before; but
    # trailing padding, bytes outside the meaning of the data set, goes whatever a rule says.
    keep = basic_profile().with_rules([Rule(TagPattern.parse("FFFx,FFFx"), Action.K)])
    padding = trailer.startswith(b"\xfc\xff\xfc\xff")
    assert (read_instance(data, keep).pixel_offset is None) is not padding
    assert_same(data, settings(keep))
    assert b"Petra" not in anonymize_bytes(data, settings(keep))[0]


def test_a_damaged_element_after_the_pixel_data_fails_as_before() -> None:
    data = file_bytes(ct()) + b"\xfc\xff\xfc\xffOB\x00\x00" + struct.pack("<I", 600) + b"Petra\x00"
    with pytest.raises(AnonymizerError):
        anonymize_bytes(data, settings())
    assert_same(data, settings())


@pytest.mark.parametrize(
    "profile",
    [
        basic_profile(["CleanPixelData"]),
        basic_profile().with_rules([Rule(TagPattern.parse("7FE0,0010"), Action.X)]),
        basic_profile().with_rules([Rule(TagPattern.parse("7FE0,xxxx"), Action.K)]),
    ],
    ids=["CleanPixelData", "rule-X", "rule-K"],
)
def test_profiles_that_touch_the_pixel_data_parse_it(profile: Profile) -> None:
    data = file_bytes(ct())
    assert read_instance(data, profile).pixel_offset is None
    assert_same(data, settings(profile))


@pytest.mark.parametrize("cut", [1, 2, 100, 4000])
def test_a_file_cut_short_in_its_pixel_data_fails_as_before(cut: int) -> None:
    data = file_bytes(ct())[:-cut]
    with pytest.raises(AnonymizerError):
        anonymize_bytes(data, settings())
    assert_same(data, settings())


def test_a_file_without_pixel_data_is_parsed_once() -> None:
    ds = ct()
    del ds.PixelData
    del ds.Rows, ds.Columns
    data = file_bytes(ds)
    assert read_instance(data, basic_profile()).pixel_offset is None
    assert_same(data, settings())


@pytest.mark.parametrize("meta", ["as read", "converted"])
@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda path: path.rsplit("/", 1)[-1])
def test_the_engines_writer_writes_what_pydicom_writes(path: str, meta: str) -> None:
    # "converted": the file meta's elements as the engine leaves them (set values), which its writer writes itself.
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        dataset = dcmread(BytesIO(data))
        del dataset[0x7FE00010:0x7FE00011]
        if meta == "converted" and hasattr(dataset, "file_meta"):
            for tag in list(dataset.file_meta.keys()):
                dataset.file_meta[tag].value  # noqa: B018  (converts the element)
        dataset.preamble = None  # the engine's preamble is always zeros: pydicom's then too
        buffer = BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
    except Exception:
        return  # pydicom cannot write it: the engine falls back to pydicom and fails the same way
    dataset.preamble = data[:128]  # the input's, which the engine's writer does not copy
    assert write_dataset(dataset) == buffer.getvalue()


def test_the_meta_the_engine_rebuilds_is_written_by_its_own_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[bytes | None] = []

    def spy(*args: Any) -> bytes | None:
        written.append(meta_plainly(*args))
        return written[-1]

    monkeypatch.setattr(writing, "_meta_plainly", spy)
    compared = 0
    for path in PYDICOM_FILES:
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            instance = read_instance(data, basic_profile())
        except AnonymizerError:
            continue
        anonymize_dataset(instance.dataset, settings())
        instance.dataset.preamble = None
        if instance.pixel_offset is None:
            continue  # parsed whole: pydicom writes the pixel data and everything else
        written.clear()
        header = instance.output_parts()[0]
        if not written:
            continue  # a data set the writer leaves to pydicom (big endian, another character set)
        assert written[0] is not None, path
        assert header == file_bytes(instance.dataset), path
        compared += 1
    assert compared >= 20  # the pydicom files whose header the engine splices and writes itself


@pytest.mark.parametrize("vr", ["UI", "CS", "LO", "UN"])
@pytest.mark.parametrize("sop_class", ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2\\1.2.3", "1.2.\u00e9"])
def test_a_meta_written_as_pydicom_writes_it_whatever_the_sender_put_in_it(vr: str, sop_class: str) -> None:
    # The transfer syntax is the one element of the sender's meta the engine keeps, as it was read (its VR too); the
    # SOP Class UID, kept in the data set, goes to the meta: two, and one not ASCII.
    ds = ct()
    ds.file_meta[0x00020010] = DataElement(
        0x00020010, vr, ExplicitVRLittleEndian.encode() if vr == "UN" else ExplicitVRLittleEndian
    )
    ds.SOPClassUID = sop_class.split("\\") if "\\" in sop_class else sop_class
    instance = read_instance(file_bytes(ds), basic_profile())  # a UID under another VR is still a UID
    assert instance.pixel_offset is not None  # the header parsed, the pixel data spliced
    # Parsed whole too (CleanPixelData decodes the pixels in the syntax the meta names).
    assert not read_dataset(file_bytes(ds)).file_meta.TransferSyntaxUID.is_compressed
    if not sop_class.isascii():
        with pytest.raises(AnonymizerError, match="0008,0016"):  # refused, naming the attribute
            anonymize_dataset(instance.dataset, settings())
        return
    anonymize_dataset(instance.dataset, settings())
    instance.dataset.preamble = None
    header = instance.output_parts()[0]
    assert header == file_bytes(instance.dataset)
    assert dcmread(BytesIO(header)).file_meta[0x00020010].VR == "UI"


# A value the engine set (converted, not raw) of each VR its writer writes in one piece: odd and even lengths (the
# padding differs: NUL for UI, a space for the others), empty, a backslash inside one str, multi-valued (pydicom's
# way), and one that is not ASCII (pydicom's way).
SET_VALUES = [
    (0x00080018, "UI", "1.2.3.4"),
    (0x0020000D, "UI", "1.2.3.45"),
    (0x0020000E, "UI", ""),
    (0x00080060, "CS", "CT"),
    (0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"),
    (0x00180015, "CS", "HEAD"),
    (0x00200020, "CS", ["A", "P"]),
    (0x00080020, "DA", "20240102"),
    (0x00080021, "DA", "2024010"),
    (0x00080030, "TM", "12345"),
    (0x00080031, "TM", "123456.7"),
    (0x0008002A, "DT", "20240102123456"),
    (0x00181012, "DA", ""),
    (0x00101010, "AS", "045Y"),
    (0x00080070, "LO", "Caf\u00e9"),
    (0x00081010, "SH", "St\u00e4tion"),
    (0x00180050, "DS", "1.5"),
]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_values_the_engine_sets_are_written_as_pydicom_writes_them(syntax: str) -> None:
    ds = dcmread(BytesIO(file_bytes(ct(syntax))))
    del ds[0x7FE00010]
    for tag, vr, value in SET_VALUES:
        ds.add_new(tag, vr, value)
    ds.preamble = None
    expected = file_bytes(ds)
    assert _write_plainly(ds) == expected  # the engine's own writer, not its fallback to pydicom's
    assert write_dataset(ds) == expected
    for tag, _, value in SET_VALUES:
        if isinstance(value, str) and value.isascii():
            assert value.encode() in expected, tag  # each one is written, as it is
