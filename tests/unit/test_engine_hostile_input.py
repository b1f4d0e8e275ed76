"""Malformed, truncated, fuzzed and hostile input: a clear typed error or a clean output, never anything else.

The fuzz budget here is fixed and small for `make test`; raise it by hand with
``HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/unit/test_engine_hostile_input.py``.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import VR

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import Option, Profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.errors import AnonymizerError

SETTINGS = AnonymizationSettings(hasher=KeyedHasher(b"fuzz"))
# The options that keep more (dates, times, descriptions cleaned rather than removed, safe private attributes)
KEEPING_SETTINGS = AnonymizationSettings(
    hasher=KeyedHasher(b"fuzz"),
    profile=Profile(
        options=frozenset(
            {
                Option.CleanDesc,
                Option.CleanStructdCont,
                Option.CleanGraph,
                Option.RetainSafePrivate,
                Option.RetainLongModifDates,
                Option.RetainPatientChars,
            }
        )
    ),
)
SEEDS = {name: Path(get_testdata_file(name)).read_bytes() for name in ("CT_small.dcm", "rtplan.dcm", "JPEG2000.dcm")}
EXAMPLES = 2000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 150


def _check(data: bytes) -> None:
    """Anonymizing ``data`` either fails with one of our errors, or gives a readable output without the name."""
    try:
        output, _report = anonymize_bytes(data, SETTINGS)
    except AnonymizerError as error:
        assert "^" not in str(error)  # error messages carry no person names
        return
    result = dcmread(BytesIO(output))
    assert result.PatientIdentityRemoved == "YES"
    assert b"CompressedSamples" not in output  # CT_small's patient name
    assert b"Anonymized^" not in output


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(min_value=132, max_value=4000), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
)
# Found by the long run (make soak): a VR byte made non-ASCII was written back three bytes long by the fast writer,
# shifting every later element (the output had no PatientIdentityRemoved); a cut element of unknown VR at the end
# raised NotImplementedError from the completeness check.
@example(seed="CT_small.dcm", edits=[(359, 128)], cut=None)
@example(seed="rtplan.dcm", edits=[(132, 1)], cut=898)
def test_mutated_files_fail_cleanly_or_anonymize_fully(
    seed: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    if cut is not None:
        data = data[:cut]
    _check(bytes(data))


# Element headers are where a damaged file goes wrong: the VR, the length and the tag of an element, in files of
# every encoding pydicom ships (explicit and implicit VR, big endian, deflated, encapsulated, sequences, SR, RT).
HEADER_SEEDS = {
    name: Path(get_testdata_file(name)).read_bytes()
    for name in (
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "image_dfl.dcm",
        "rtplan.dcm",
        "rtdose.dcm",
        "test-SR.dcm",
        "reportsi.dcm",
        "JPEG2000.dcm",
        "SC_rgb_small_odd.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    )
}
_VR_BYTES = {vr.value.encode() for vr in VR if len(vr.value) == 2}
VR_POSITIONS = {
    name: [at for at in range(132, len(data) - 1) if data[at : at + 2] in _VR_BYTES]
    for name, data in HEADER_SEEDS.items()
}
# (Patient's Name as bytes, or None when too short to search for; SOP Instance UID) of each seed
SEED_IDENTITY = {
    name: (
        str(ds.PatientName).encode() if len(str(ds.get("PatientName", ""))) >= 4 else None,
        ds.SOPInstanceUID,
    )
    for name, ds in ((name, dcmread(BytesIO(data))) for name, data in HEADER_SEEDS.items())
}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    seed=st.sampled_from(sorted(HEADER_SEEDS)),
    anonymization=st.sampled_from([SETTINGS, KEEPING_SETTINGS]),
)
def test_damaged_element_headers_fail_cleanly_or_anonymize_fully(
    data: st.DataObject, seed: str, anonymization: AnonymizationSettings
) -> None:
    damaged = bytearray(HEADER_SEEDS[seed])
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.sampled_from(VR_POSITIONS[seed]), label="element") + data.draw(
            st.integers(-4, 7), label="field byte"
        )
        if 132 <= at < len(damaged):
            damaged[at] = data.draw(st.integers(0, 255), label="value")
    try:
        output, _report = anonymize_bytes(bytes(damaged), anonymization)
    except AnonymizerError:
        return
    result = dcmread(BytesIO(output))
    assert result.PatientIdentityRemoved == "YES"
    name, uid = SEED_IDENTITY[seed]
    if name is not None:
        assert name not in output
    assert result.SOPInstanceUID != uid


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_after_a_valid_preamble(noise: bytes) -> None:
    _check(b"\x00" * 128 + b"DICM" + noise)


def _file(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _base() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.500.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.500"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.500.2"
    ds.PatientName = "Hostile^Input"
    return ds


def test_deeply_nested_sequences_are_cleaned_at_every_depth() -> None:
    ds = _base()
    item = Dataset()
    item.PatientName = "Hostile^Input"
    for _ in range(60):
        outer = Dataset()
        outer.ContentSequence = Sequence([item])
        item = outer
    ds.ContentSequence = item.ContentSequence
    try:
        output, _ = anonymize_bytes(_file(ds), SETTINGS)
    except AnonymizerError:
        return
    assert b"Hostile" not in output


def test_a_name_under_a_tag_whose_attribute_holds_no_text_is_removed() -> None:
    """Found by a long run of the fuzzer above: a damaged group number moved Patient's Name to (7F10,0010), a
    Variable Pixel Data tag that no table row names (so kept), and the name went out with it."""
    ds = _base()
    ds.add_new(0x7F100010, "PN", "Hostile^Input")  # dictionary: OB or OW
    ds.add_new(0x00280002, "LO", "Hostile text")  # Samples per Pixel (US) holding text
    ds.add_new(0x00200013, "PN", "Hostile^Input")  # Instance Number (IS) holding a name
    output, _ = anonymize_bytes(_file(ds), SETTINGS)
    assert b"Hostile" not in output
    result = dcmread(BytesIO(output))
    assert 0x7F100010 not in result and 0x00280002 not in result and 0x00200013 not in result
    assert result.PatientIdentityRemoved == "YES"


def test_a_kept_time_that_is_not_a_time_is_replaced() -> None:
    """Found by the fuzzer above with the keeping options: a damaged length made Series Time read the next
    attributes, Patient's Name among them; times are kept under RetainLongModifDates, and so was the name."""
    ds = _base()
    ds.SeriesTime = "1200\x08\x00\x10\x00PN\x0e\x00Hostile^Input"
    ds.StudyTime = "Hostile^Input"
    ds.AcquisitionTime = "101010.25"
    output, report = anonymize_bytes(_file(ds), KEEPING_SETTINGS)
    assert b"Hostile" not in output
    result = dcmread(BytesIO(output))
    assert result.AcquisitionTime == "101010.25"  # a valid time stays, as the option says
    assert result.SeriesTime != ds.SeriesTime and result.StudyTime != ds.StudyTime
    assert any("0008,0031" in warning for warning in report.warnings)


def test_a_transfer_syntax_uid_with_two_values_is_refused_naming_it() -> None:
    """Found by the fuzzer above: the meta element then reads as a list, which the engine took for one UID."""
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    syntax = b"1.2.840.10008.1.2.1\x00"
    assert data.count(syntax) == 1
    damaged = data.replace(syntax, b"1.2.840.10008.1.2.1\\")  # same length, a second (empty) value
    with pytest.raises(AnonymizerError, match=r"\(0002,0010\) Transfer Syntax UID"):
        anonymize_bytes(damaged, SETTINGS)


def test_huge_values_are_handled() -> None:
    ds = _base()
    ds.StudyDescription = "Hostile^Input " * 5
    ds.ImageComments = "x" * 2_000_000  # far over LT's limit: removed by the Basic profile anyway
    ds.add_new(0x00091010, "UT", "Hostile^Input " * 100_000)
    output, _ = anonymize_bytes(_file(ds), SETTINGS)
    assert b"Hostile" not in output
    assert len(output) < 10_000


@pytest.mark.parametrize(
    "tag, vr, placeholder, raw",
    [
        (0x00080020, "DA", "19991231", b"notadate"),
        (0x00081155, "UI", "1.2.99999", b"1.2.abcde"),
        (0x00101030, "DS", "12345.6", b"1e99999"),
        (0x00200013, "IS", "777777", b"seven!"),
        (0x00080060, "CS", "ABCDEF", b"AB\x00\x01EF"),
    ],
)
def test_wrong_values_for_their_vr(tag: int, vr: str, placeholder: str, raw: bytes) -> None:
    ds = _base()
    ds.add_new(tag, vr, placeholder)
    data = _file(ds)
    assert data.count(placeholder.encode()) == 1
    _check(data.replace(placeholder.encode(), raw))


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "rtplan.dcm"])
@pytest.mark.parametrize("missing", [1, 100, 1000, 1500])
def test_files_cut_short_are_refused_naming_why(name: str, missing: int) -> None:
    whole = SEEDS[name]
    with pytest.raises(AnonymizerError, match=r"cut short|damaged|not a valid"):
        anonymize_bytes(whole[: len(whole) - missing], SETTINGS)


UID_ATTRIBUTES = {0x00080018: "1.2.826.0.1.3680043.77.1", 0x0020000D: "1.2.826.0.1.3680043.77.2",
                  0x0020000E: "1.2.826.0.1.3680043.77.3", 0x00200052: "1.2.826.0.1.3680043.77.4"}  # fmt: skip


@pytest.mark.parametrize("vr", ["OB", "OW", "OD", "OF", "OL", "OV", "UN"])
@pytest.mark.parametrize("tag", sorted(UID_ATTRIBUTES), ids=lambda tag: f"{tag:08X}")
def test_a_uid_written_under_a_binary_vr_gets_its_new_uid(tag: int, vr: str) -> None:
    # A UID the sender wrote as bytes (OB, OW... or UN): the copy carries a new one, and the file is not refused.
    from pydicom.dataelem import DataElement

    ds = dcmread(BytesIO(SEEDS["CT_small.dcm"]))
    original = UID_ATTRIBUTES[tag]
    ds[tag] = DataElement(tag, vr, original.encode() + b"\x00" * (-len(original) % 8))
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    output, _ = anonymize_bytes(buffer.getvalue(), SETTINGS)
    assert original.encode() not in output
    copy = dcmread(BytesIO(output))
    value = copy[tag].value
    new = value.decode("ascii").strip("\x00") if isinstance(value, bytes) else str(value)
    assert new.startswith("2.25.") and new != original, (vr, value)
    if vr != "UN":  # UN holds any bytes: the new UID stays bytes there
        assert copy[tag].VR == "UI"
