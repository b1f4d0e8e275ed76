"""D gives a dummy on every VR (issue 14, class 6): where PS3.15 asks for a non-zero-length dummy consistent with the
VR, binary attributes (OB, OW, OD, OF, OL, OV, UN) get one too: non-empty, of a length valid for the VR (a whole
number of its units, even), and made of zeros, never of the input's bytes. For each D row of Table E.1-1 on a binary
attribute (taken from the table, not typed here) and for a custom D rule on an attribute of each binary VR, at the
top level and inside a sequence item, in Explicit and Implicit VR Little Endian and Explicit VR Big Endian."""

from __future__ import annotations

from io import BytesIO

import pytest
from planted_markers import forms_found
from pydicom import dcmread
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from orthanc_anonymizer.deid import standard
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profile_files import parse_rules
from orthanc_anonymizer.deid.profiles import Action, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher

BINARY_VRS = ("OB", "OW", "OD", "OF", "OL", "OV", "UN")
UNIT = {"OB": 2, "OW": 2, "OD": 8, "OF": 4, "OL": 4, "OV": 8, "UN": 2}  # value lengths are even (PS3.5 7.1.1)
MARKER = "DummyMarker3Kq9"


def _tag(text: str) -> int:
    group, element = text.split(",")
    return int(group + element, 16)


def table_d_rows() -> dict[int, str]:
    """Tag -> VR of every row of Table E.1-1 whose Basic action is D on a binary attribute."""
    rows = {}
    for row in standard.confidentiality_profile_rows():
        if "x" in row["tag"].lower() or row["basic"] != "D":
            continue
        tag = _tag(row["tag"])
        vr = dictionary_VR(tag)
        if vr in BINARY_VRS:
            rows[tag] = vr
    return rows


def one_tag_of_each_binary_vr() -> dict[int, str]:
    """A public, current attribute of each binary VR (pydicom's dictionary), for a custom D rule."""
    chosen: dict[str, int] = {}
    for tag, entry in sorted(DicomDictionary.items()):
        if entry[0] in BINARY_VRS and entry[0] not in chosen and not entry[3] and tag >> 16 not in (0x0002, 0x7FE0):
            chosen[entry[0]] = tag
    return {tag: vr for vr, tag in chosen.items()}


def test_the_table_has_d_rows_on_binary_attributes() -> None:
    rows = table_d_rows()
    assert {0x00420011, 0x04000115, 0x00720065, 0x0072006D, 0x00340002, 0x00340005, 0x00340007} <= set(rows)
    assert set(one_tag_of_each_binary_vr().values()) == set(BINARY_VRS)


def _file(elements: dict[int, str], syntax: str) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.6.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.6"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.6.2"
    item = Dataset()
    value = (MARKER.encode() + b"!") * 8  # 128 bytes: a whole number of units of every VR
    for tag, vr in elements.items():
        ds.add_new(tag, vr, value)
        item.add_new(tag, vr, value)
    ds.ContentSequence = Sequence([item])  # D on the Content Sequence: the items are kept and handled
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _assert_dummies(output: bytes, elements: dict[int, str]) -> None:
    assert not forms_found(output, MARKER)
    result = dcmread(BytesIO(output))
    for dataset in (result, result.ContentSequence[0]):
        for tag, vr in elements.items():
            assert tag in dataset, f"{tag:08X} removed, not dummied"
            value = dataset[tag].value
            assert isinstance(value, bytes) and value, f"{tag:08X} ({vr}) empty"
            assert len(value) % UNIT[vr] == 0, f"{tag:08X} ({vr}): {len(value)} bytes"
            assert value.strip(b"\x00") == b"", f"{tag:08X} ({vr}): not zeros"


SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda syntax: syntax.name)
def test_table_d_rows_on_binary_attributes_get_a_dummy(syntax: str) -> None:
    elements = table_d_rows()
    profile = basic_profile()
    assert all(profile.action_table.action_for(tag) is Action.D for tag in elements)
    output = anonymize_bytes(_file(elements, syntax), AnonymizationSettings(hasher=KeyedHasher(b"d")))[0]
    _assert_dummies(output, elements)


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda syntax: syntax.name)
def test_a_custom_d_rule_gives_a_dummy_on_every_binary_vr(syntax: str) -> None:
    elements = one_tag_of_each_binary_vr()
    rules = parse_rules("\n".join(f"{tag >> 16:04X},{tag & 0xFFFF:04X};D" for tag in elements), "csv", "test")
    settings = AnonymizationSettings(profile=basic_profile().with_rules(rules), hasher=KeyedHasher(b"d"))
    output = anonymize_bytes(_file(elements, syntax), settings)[0]
    _assert_dummies(output, elements)
