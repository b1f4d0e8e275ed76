"""Nothing of the input outside its data set reaches the output (issue 14, class 1).

A marker planted in the 128-byte preamble, in Data Set Trailing Padding (FFFC,FFFC), in an element after the data set,
or in any file meta element that can carry a value, under Basic and under every option that keeps more, is in no
encoding in the output bytes; the output preamble is 128 zero bytes and its file meta is the engine's own. And with
each of these fixes switched off (the writer made to copy the input's preamble or trailing bytes, the meta kept), the
residual-PHI check of the CLI (--verify), of the plugin's workers and of verify_bytes reports the file, naming where:
``preamble``, ``trailing padding (FFFC,FFFC) and after``, ``after the data set``, the meta tag.
"""

from __future__ import annotations

import os
import struct
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planted_markers import forms_found
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement

from orthanc_anonymizer.cli import FileTask, anonymize_one
from orthanc_anonymizer.deid import reading, walk
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import Option, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import verify_bytes
from orthanc_anonymizer.deid.writing import IMPLEMENTATION_CLASS_UID
from orthanc_anonymizer.errors import AnonymizerError
from orthanc_anonymizer.pipeline import InstanceTask, anonymize_instance

EXAMPLES = 400 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 40
# Every option that keeps something (CleanPixelData aside: it changes the pixels; full dates kept, not shifted).
KEEPING = [option for option in Option if option not in (Option.CleanPixelData, Option.RetainLongModifDates)]
PROFILES = {"basic": basic_profile(), "keeping": basic_profile(KEEPING)}
# Explicit and Implicit VR, big endian, encapsulated pixel data, no pixel data, deflated.
SEEDS = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "rtplan.dcm"]
DEFLATED = "image_dfl.dcm"
# File meta elements that can carry a value (PS3.10 Table 7.1-1), by VR.
META_TEXT = {
    0x00020013: "SH",  # Implementation Version Name
    0x00020016: "AE",  # Source Application Entity Title
    0x00020017: "AE",  # Sending Application Entity Title
    0x00020018: "AE",  # Receiving Application Entity Title
    0x00020026: "UR",  # Source Presentation Address
    0x00020027: "UR",  # Sending Presentation Address
    0x00020028: "UR",  # Receiving Presentation Address
    0x00020102: "OB",  # Private Information
}
META_UIDS = [0x00020003, 0x00020012, 0x00020100]  # Media Storage SOP Instance, Implementation Class, Private Creator
REBUILT_META = {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}
TEXT_ENCODINGS = ["ascii", "utf-16-le", "utf-16-be", "latin-1"]
PADDING_TAG = 0xFFFCFFFC


def _encoded_value(marker: str, encoding: str) -> bytes:
    value = marker.encode(encoding)
    return value + b"\x00" * (len(value) % 2)


def _command_element(value: bytes, implicit: bool, little: bool) -> bytes:
    """(0000,0902) Error Comment holding ``value``: an element after the data set (group 0000 is no part of a stored
    instance), in the encoding of the file it is appended to."""
    order = "<" if little else ">"
    header = struct.pack(order + "HH", 0x0000, 0x0902)
    if implicit:
        return header + struct.pack(order + "I", len(value)) + value
    return header + b"LO" + struct.pack(order + "H", len(value)) + value


def plant(seed: str, where: str, marker: str, encoding: str = "ascii", meta_tag: int = 0x00020016) -> bytes:
    """``seed`` with ``marker`` planted ``where``: ``preamble``, ``padding``, ``after`` (an element after the data
    set), ``padding+after``, or ``meta`` (in ``meta_tag``)."""
    dataset = dcmread(get_testdata_file(seed))
    value = _encoded_value(marker, encoding)
    if where == "preamble":
        dataset.preamble = (value * (128 // len(value) + 1))[:128]
    if where.startswith("padding"):
        dataset[PADDING_TAG] = DataElement(PADDING_TAG, "OB", value)
    if where == "meta":
        if meta_tag in META_UIDS:
            dataset.file_meta.add_new(meta_tag, "UI", marker)
        elif META_TEXT[meta_tag] == "OB":
            dataset.file_meta.add_new(meta_tag, "OB", value)
            dataset.file_meta.PrivateInformationCreatorUID = "1.2.826.0.1.3680043.99.14"
        else:
            dataset.file_meta.add_new(meta_tag, META_TEXT[meta_tag], marker)
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    if where.endswith("after"):
        implicit, little = dataset.original_encoding
        data += _command_element(value, bool(implicit), bool(little))
    return data


def _uid_marker(marker: str) -> str:
    return "1.2.826.0.1.3680043.99." + str(int.from_bytes(marker.encode(), "big"))[:30]


def check_output(original: bytes, output: bytes, marker: str, profile_name: str) -> None:
    assert output[:128] == bytes(128)
    assert not forms_found(output, marker), f"marker found in the output: {forms_found(output, marker)}"
    result = dcmread(BytesIO(output))
    assert set(result.file_meta.keys()) <= REBUILT_META
    assert result.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    assert PADDING_TAG not in result
    report = verify_bytes(original, output, PROFILES[profile_name])
    assert report.clean, [leak.describe() for leak in report.leaks]


MARKERS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789", min_size=12, max_size=16)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    where=st.sampled_from(["preamble", "padding", "after", "padding+after", "meta"]),
    marker=MARKERS,
    encoding=st.sampled_from(TEXT_ENCODINGS),
    meta_tag=st.sampled_from([*META_TEXT, *META_UIDS]),
    profile_name=st.sampled_from(sorted(PROFILES)),
)
def test_a_marker_outside_the_data_set_never_reaches_the_output(
    seed: str, where: str, marker: str, encoding: str, meta_tag: int, profile_name: str
) -> None:
    if where == "meta" and meta_tag in META_UIDS:
        marker = _uid_marker(marker)
    if where == "meta" and META_TEXT.get(meta_tag) == "AE":
        marker = marker[:16]
    original = plant(seed, where, marker, encoding, meta_tag)
    settings_ = AnonymizationSettings(profile=PROFILES[profile_name], hasher=KeyedHasher(b"planting"))
    output = anonymize_bytes(original, settings_)[0]  # never refused: Orthanc stores each of these
    check_output(original, output, marker, profile_name)


@pytest.mark.parametrize("where", ["preamble", "padding", "meta"])
def test_a_deflated_file_carries_no_marker_outside_its_data_set_either(where: str) -> None:
    marker = "DeflatedMarker7Q"
    original = plant(DEFLATED, where, marker)
    output = anonymize_bytes(original, AnonymizationSettings(hasher=KeyedHasher(b"planting")))[0]
    check_output(original, output, marker, "basic")


def test_a_file_without_preamble_gets_a_zero_preamble_and_a_full_meta() -> None:
    original = Path(get_testdata_file("rtstruct.dcm")).read_bytes()
    assert original[128:132] != b"DICM"
    output = anonymize_bytes(original, AnonymizationSettings(hasher=KeyedHasher(b"planting")))[0]
    assert output[:132] == bytes(128) + b"DICM"
    meta = dcmread(BytesIO(output)).file_meta
    assert meta.TransferSyntaxUID == "1.2.840.10008.1.2"  # read as Implicit VR Little Endian, written so


# -- the fix switched off: the residual check still catches it, and says where --------------------------------------

NAME = "Plantedname^Outsideson"  # the patient's name of the planted file, planted outside its data set too
MARKER = "Plantedname"


def _planted_with_name(where: str) -> bytes:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.PatientName = NAME
    del dataset[PADDING_TAG]  # CT_small's own (zeros): each case plants its own bytes after the pixel data
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    dataset = dcmread(BytesIO(data))
    if where == "preamble":
        dataset.preamble = MARKER.encode().ljust(128, b"\x00")
    elif where == "padding":
        dataset[PADDING_TAG] = DataElement(PADDING_TAG, "OB", _encoded_value(MARKER, "ascii"))
    elif where == "meta":
        dataset.file_meta.SourceApplicationEntityTitle = MARKER
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    if where == "after":
        data += _command_element(_encoded_value(MARKER, "ascii"), False, True)
    return data


def _input_tail(data: bytes) -> bytes:
    """The input's bytes after its Pixel Data element (the padding or the element planted there)."""
    at = data.rindex(b"\xe0\x7f\x10\x00")
    (length,) = struct.unpack_from("<I", data, at + 8)
    return data[at + 12 + length :]


MUTANTS = {
    # where planted -> (what the broken writer does, where the check must say it found something)
    "preamble": ("copies the input's preamble", "preamble"),
    "padding": ("copies the input's trailing padding", "trailing padding (FFFC,FFFC) and after"),
    "after": ("copies the input's bytes after its data set", "after the data set"),
    "meta": ("keeps the input's file meta", "0002,0016"),
}


@pytest.fixture
def broken_writer(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    where: str = request.param
    if where == "meta":

        def keep_meta(self: object, dataset: object) -> None:
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID  # type: ignore[attr-defined]

        monkeypatch.setattr(walk._Walker, "process_file_meta", keep_meta)
        return where
    output_parts = reading.DicomInstance.output_parts

    def copying_parts(self: reading.DicomInstance) -> list[bytes | memoryview]:
        parts = output_parts(self)
        if where == "preamble":
            return [self.data[:128] + bytes(parts[0])[128:], *parts[1:]]
        return [*parts, _input_tail(self.data)]

    monkeypatch.setattr(reading.DicomInstance, "output_parts", copying_parts)
    return where


@pytest.mark.parametrize("broken_writer", sorted(MUTANTS), indirect=True)
def test_the_residual_checks_catch_what_a_broken_writer_copies(broken_writer: str, tmp_path: Path) -> None:
    where = broken_writer
    expected_path = MUTANTS[where][1]
    original = _planted_with_name(where)
    settings_ = AnonymizationSettings(hasher=KeyedHasher(b"mutant"))
    # The plugin: a worker's residual check fails the instance (the job then stores nothing).
    outcome = anonymize_instance(original, InstanceTask(settings_))
    assert outcome.error is None and outcome.data is not None
    assert forms_found(outcome.data, MARKER), "the mutant did not copy the marker: this test tests nothing"
    assert outcome.residual_clean is False
    assert expected_path in outcome.residual_leaks
    # The CLI with --verify: the file fails, is not written, and the leak is named.
    source = tmp_path / "planted.dcm"
    source.write_bytes(original)
    result = anonymize_one(FileTask(source, tmp_path / "out.dcm", "planted.dcm"), settings_, verify=True)
    assert not result.ok and not (tmp_path / "out.dcm").exists()
    assert expected_path in {leak["Path"] for leak in result.leaks}
    # The name found there is named as the patient's name, by its tag, never quoted.
    assert any(leak["Path"] == expected_path and leak["Source"] == "0010,0010" for leak in result.leaks)
    assert all(MARKER not in str(value) for leak in result.leaks for value in leak.values())
    # verify_bytes on the two files.
    report = verify_bytes(original, outcome.data, basic_profile())
    assert expected_path in {leak.path for leak in report.leaks}


@pytest.mark.parametrize("where", sorted(MUTANTS))
def test_without_the_mutation_the_same_files_are_clean(where: str, tmp_path: Path) -> None:
    original = _planted_with_name(where)
    settings_ = AnonymizationSettings(hasher=KeyedHasher(b"mutant"))
    outcome = anonymize_instance(original, InstanceTask(settings_))
    assert outcome.residual_clean is True and outcome.data is not None
    assert not forms_found(outcome.data, MARKER)
    source = tmp_path / "planted.dcm"
    source.write_bytes(original)
    assert anonymize_one(FileTask(source, tmp_path / "out.dcm", "planted.dcm"), settings_, verify=True).ok


def test_a_transfer_syntax_that_is_not_a_uid_is_refused_not_copied() -> None:
    """The Transfer Syntax UID is the one meta value the output keeps: text there is refused, naming it."""
    dataset = dcmread(get_testdata_file("rtplan.dcm"))
    dataset.file_meta.TransferSyntaxUID = "MarkerInSyntax"
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    with pytest.raises(AnonymizerError, match=r"\(0002,0010\) Transfer Syntax UID: not a UID"):
        anonymize_bytes(buffer.getvalue(), AnonymizationSettings(hasher=KeyedHasher(b"planting")))
