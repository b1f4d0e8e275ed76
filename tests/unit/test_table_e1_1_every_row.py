"""Every row of PS3.15 Table E.1-1, under the Basic profile and under each option column on its own.

One CT instance carries an attribute for every fixed-tag row of the table (plus the repeating-group rows),
is anonymized, written out and read back; each attribute must then show the action the standard names for it
(removed, empty, dummy, kept, cleaned or a new UID), with compound codes resolved by the attribute's type in
the CT Image IOD.
"""

from __future__ import annotations

import csv
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from orthanc_anonymizer.deid import standard
from orthanc_anonymizer.deid.actions import resolve_compound
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import Action, Option, basic_profile, table_action
from orthanc_anonymizer.deid.uids import KeyedHasher

SHARED_TABLE = Path(__file__).resolve().parents[3] / "shared" / "ps3.15" / "table-e1-1.csv"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SETTINGS_SECRET = b"table test secret"
ORIGINAL = {
    "AE": "ORIGAE",
    "AS": "042Y",
    "CS": "ORIGCS",
    "DA": "20200102",
    "DS": "7.5",
    "DT": "20200102101010",
    "IS": "7",
    "LO": "Original Long",
    "LT": "Original long text",
    "PN": "Doe^Jane",
    "SH": "ORIGSH",
    "ST": "Original short text",
    "TM": "101010",
    "UC": "Original UC",
    "UI": "1.2.826.0.1.3680043.99.1",
    "UR": "http://example.org/original",
    "UT": "Original unlimited text",
    "US": 7,
    "SS": 7,
    "UL": 7,
    "SL": 7,
    "FL": 7.0,
    "FD": 7.0,
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "UN": b"ORIG",
}
STRUCTURAL = {0x00080016, 0x00080018, 0x0020000D, 0x0020000E, 0x00020003}


def _rows() -> list[dict[str, object]]:
    return standard.confidentiality_profile_rows()


def _fixed_rows() -> list[dict[str, object]]:
    return [
        row
        for row in _rows()
        if "x" not in str(row["tag"]) and "," in str(row["tag"]) and "gggg" not in str(row["tag"])
    ]


def _tag(row: dict[str, object]) -> int:
    return int(str(row["tag"]).replace(",", ""), 16)


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" ")[0]
    except KeyError:
        return "UN"  # newer than pydicom's dictionary


def _value(vr: str) -> object:
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "C1"
        item.CodingSchemeDesignator = "99TEST"
        item.CodeMeaning = "a code"
        return Sequence([item])
    return ORIGINAL.get(vr, b"ORIG")


def _instance() -> bytes:
    ds = Dataset()
    for row in _fixed_rows():
        tag = _tag(row)
        if tag >> 16 in (0x0000, 0x0002):
            continue  # command set and file meta rows: not in a stored instance's data set
        vr = _vr(tag)
        ds.add_new(tag, vr, _value(vr))
    ds.add_new(0x50000010, "US", 7)  # curve group (retired): Number of Points
    ds.add_new(0x60003000, "OW", b"\x00\x01")  # overlay data
    ds.add_new(0x60004000, "LT", "overlay comment")
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.2"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.3"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.4"
    ds.PatientID = "PID-4711"
    ds.PatientName = "Doe^Jane"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def original() -> Dataset:
    return dcmread(BytesIO(_instance()))


def _expected(row: dict[str, object], options: frozenset[Option]) -> Action:
    action = table_action(str(row["basic"]), dict(row["options"]), options)  # type: ignore[arg-type]
    if action.is_compound:
        types = standard.attribute_types_for_sop_class(CT_IMAGE) or {}
        action = resolve_compound(action, types.get(str(row["keyword"])), True)
    return action


def _check(tag: int, expected: Action, before: Dataset, after: Dataset, options: frozenset[Option]) -> str | None:
    """None if the output shows ``expected`` for ``tag``, else what is wrong (for the assertion message)."""
    vr = _vr(tag)
    present = tag in after
    old = before[tag].value if tag in before else None
    new = after[tag].value if present else None
    if expected is Action.X:
        return None if not present else "should be removed"
    if not present:
        return f"should be present for {expected.value}"
    if vr == "SQ":
        if expected is Action.Z:
            return None if len(new) == 0 else "sequence should be empty"
        return None if len(new) >= 1 else "sequence should keep its items"
    if expected is Action.Z:
        return None if new in ("", None, b"") or (hasattr(new, "__len__") and len(new) == 0) else "should be empty"
    if expected is Action.K:
        return None if str(new) == str(old) else "should be kept unchanged"
    if expected is Action.D:
        if new in ("", None, b""):
            return "dummy should be non-empty"
        return None if str(new) != str(old) or vr in ("US", "SS", "UL", "SL", "FL", "FD") else "should be a dummy"
    if expected is Action.U:
        return None if str(new).startswith("2.25.") and str(new) != str(old) else "should be a new 2.25 UID"
    if expected is Action.C:
        if vr in ("DA", "DT") and Option.RetainLongModifDates in options:
            return None if str(new) != str(old) and str(new)[:8].isdigit() else "date should be shifted"
        return None if new not in ("", None) else "cleaned value should be kept"
    return f"unexpected action {expected}"


OPTION_SETS = [frozenset()] + [frozenset({option}) for option in Option]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(sorted(o)) or "Basic")
def test_every_row_of_table_e1_1_under_each_option(original: Dataset, options: frozenset[Option]) -> None:
    settings = AnonymizationSettings(profile=basic_profile(options), hasher=KeyedHasher(SETTINGS_SECRET))
    output, _report = anonymize_bytes(_instance(), settings)
    after = dcmread(BytesIO(output))  # written out and read back
    problems = []
    checked = 0
    for row in _fixed_rows():
        tag = _tag(row)
        if tag in STRUCTURAL or tag in (0x00100010, 0x00100020) or tag >> 16 in (0x0000, 0x0002):
            continue  # checked by the UID, pseudonym and file-meta tests
        expected = _expected(row, options)
        problem = _check(tag, expected, original, after, options)
        checked += 1
        if problem:
            problems.append(f"({row['tag']}) {row['name']} [{expected.value}]: {problem}")
    assert checked > 600
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(sorted(o)) or "Basic")
def test_repeating_group_rows(options: frozenset[Option]) -> None:
    settings = AnonymizationSettings(profile=basic_profile(options), hasher=KeyedHasher(SETTINGS_SECRET))
    after = dcmread(BytesIO(anonymize_bytes(_instance(), settings)[0]))
    kept = Option.CleanGraph in options
    assert (0x50000010 in after) is kept  # curves: X, C under Clean Graphics
    # Overlay planes: removed under Clean Graphics too (a bitmap nobody reads text in; PS3.15 E.3.3 allows it)
    assert 0x60003000 not in after
    assert 0x60004000 not in after


def test_structural_uids_are_replaced_consistently(original: Dataset) -> None:
    hasher = KeyedHasher(SETTINGS_SECRET)
    after = dcmread(BytesIO(anonymize_bytes(_instance(), AnonymizationSettings(hasher=hasher))[0]))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert after[keyword].value == hasher.uid(original[keyword].value)
    assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    assert after.SOPClassUID == CT_IMAGE
    kept = dcmread(
        BytesIO(
            anonymize_bytes(_instance(), AnonymizationSettings(profile=basic_profile(["RetainUIDs"]), hasher=hasher))[0]
        )
    )
    assert kept.SOPInstanceUID == original.SOPInstanceUID


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="shared/ps3.15 is not beside the checkout")
def test_packaged_table_matches_the_shared_standard_tables() -> None:
    with SHARED_TABLE.open(newline="", encoding="utf-8") as handle:
        shared = list(csv.DictReader(handle))
    packaged = _rows()
    assert len(shared) == len(packaged) == 657
    for source, row in zip(shared, packaged, strict=True):
        assert source["name"] == row["name"]
        assert source["basic"] == row["basic"]
        assert source["clean_desc"] == row["options"].get("CleanDesc", "")
        assert source["retain_uids"] == row["options"].get("RetainUIDs", "")
    keywords = {row["keyword"] for row in packaged}
    assert keyword_for_tag(0x00100010) in keywords
