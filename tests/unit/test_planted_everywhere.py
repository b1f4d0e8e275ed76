"""A distinct marker planted in every attribute of PS3.15 Table E.1-1 that the profile does not keep, at every depth,
in five character sets and three encodings, must be in no encoding anywhere in the output.

Every row whose action (given the options) removes or replaces the value (X, Z, D, U, a compound code, C on a name
or on a date the options shift) gets a value of its own, valid for its VR: a unique word (with a word in the
character set's script for text), a person name with alphabetic, ideographic and phonetic groups, a distinct date,
time or UID, distinct bytes for binary VRs, an item holding a marked Patient's Name for sequences. The same rows are
planted again in an item of a sequence the table keeps (Content Sequence, D: walked, every element under its own action) and
of one it does not name (Anatomic Region Sequence), nested to depth 3. The output bytes are searched for each
marker in every form it could take (:mod:`planted_markers`; the script word in the declared character set, utf-8
and utf-16), and the residual-PHI check must find the output clean, and must find a marker written back into it.

``make test`` runs each character set once (one encoding each, under Basic or an option set that keeps the most);
``HYPOTHESIS_PROFILE=long`` (make soak) runs every character set in every encoding under every option set.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pytest
from planted_markers import forms_found
from pydicom import dcmread
from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from orthanc_anonymizer.deid import standard
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import Action, Option, basic_profile, table_action
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import verify_bytes

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
KEPT_SEQUENCE = 0x0040A730  # Content Sequence: D in the table (C under Clean Structured Content), kept and walked
UNNAMED_SEQUENCE = 0x00082218  # Anatomic Region Sequence: not in Table E.1-1, kept and walked
# Character set: (Specific Character Set, ten letters of its script standing for the digits, ideographic and
# phonetic person-name groups written).
CHARSETS: dict[str, tuple[str | list[str], str, bool]] = {
    "latin1": ("ISO_IR 100", "àáâãäåæçèé", False),
    "utf8": ("ISO_IR 192", "零一二三四五六七八九", True),
    "jis": (["", "ISO 2022 IR 87"], "〇一二三四五六七八九", True),
    "gb18030": ("GB18030", "零壹贰叁肆伍陆柒捌玖", True),
    "cyrillic": ("ISO_IR 144", "абвгдежзик", False),
}
PHONETIC = "あいうえおかきくけこ"
GIVEN = "甲乙丙丁戊己庚辛壬癸"  # ideographic given names, in a set of their own
SYNTAXES = {"explicit-le": ExplicitVRLittleEndian, "implicit-le": ImplicitVRLittleEndian, "big": ExplicitVRBigEndian}
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
UNSEARCHABLE_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV"})  # numbers: not distinctive
KEEP_MOST = frozenset(set(Option) - {Option.CleanPixelData, Option.RetainLongModifDates})
KEEP_MOST_SHIFTED = frozenset(set(Option) - {Option.CleanPixelData, Option.RetainLongFullDates})
OPTION_SETS = [frozenset(), *(frozenset({o}) for o in Option if o is not Option.CleanPixelData)]
# Dates are planted 31 days apart and shifted by at most 30, so that no shifted date is another planted one.
HASHER = KeyedHasher(b"planted", date_shift_days=30)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"


@dataclass
class Planted:
    """One marker: where it was planted (for the message), the row's action, and its searchable forms."""

    where: str
    row: dict[str, object]
    vr: str
    ascii_marker: str | None
    script_word: str | None = None
    under_sequence_item: bool = False
    extra: list[str] = field(default_factory=list)


def _rows() -> list[dict[str, object]]:
    rows = []
    for row in standard.confidentiality_profile_rows():
        text = str(row["tag"])
        if "gggg" in text or "," not in text:
            continue
        text = text.replace("xx", "00").replace("XX", "00")
        tag = int(text.replace(",", ""), 16)
        if tag >> 16 in (0x0000, 0x0002) or tag in (KEPT_SEQUENCE, UNNAMED_SEQUENCE):
            continue
        rows.append({**row, "tag_value": tag})
    return rows


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" ")[0]
    except KeyError:
        return "UN"


def _script(number: int, letters: str) -> str:
    return "".join(letters[int(digit)] for digit in f"{number:05d}")


class Planter:
    """Plants distinct markers: ``number`` counts them so that no two are alike in one file."""

    def __init__(self, charset: str) -> None:
        self.charset = charset
        self.charset_value, self.letters, self.ideographic = CHARSETS[charset]
        self.number = 100
        self.planted: list[Planted] = []

    def value(self, vr: str, where: str, row: dict[str, object]) -> object:
        self.number += 1
        n = self.number
        word = f"ZQ{n:05d}"
        script = _script(n, self.letters)
        record = Planted(where, row, vr, word)
        if vr in TEXT_VRS:
            record.script_word = script
            value: object = f"{word} {script}"
        elif vr == "PN":
            record.script_word = script
            if self.ideographic:
                record.extra = [_script(n, PHONETIC)]
                value = f"{word}^Given{n}={script}^{_script(n, GIVEN)}={_script(n, PHONETIC)}"
            else:
                value = f"{word}^{script}"
        elif vr in ("CS", "AE"):
            value = word
        elif vr == "AS":
            value = f"{n % 1000:03d}D"
            record.ascii_marker = value
        elif vr == "DA":
            value = (datetime.date(1700, 1, 1) + datetime.timedelta(days=31 * n)).strftime("%Y%m%d")
            record.ascii_marker = value
        elif vr == "TM":
            value = f"1010{n % 60:02d}.{n:06d}"
            record.ascii_marker = value
        elif vr == "DT":
            value = (datetime.date(1700, 1, 1) + datetime.timedelta(days=31 * n)).strftime("%Y%m%d") + f"101010.{n:06d}"
            record.ascii_marker = value
        elif vr == "UI":
            value = f"1.2.826.0.1.3680043.99.77.{10000 + n}"
            record.ascii_marker = value
        elif vr == "IS":
            value = str(300000000 + n)
            record.ascii_marker = value
        elif vr == "DS":
            value = f"4{n:06d}.5"
            record.ascii_marker = value
        elif vr == "UR":
            value = f"http://{word.lower()}.example/"
        elif vr in BINARY_VRS:
            value = f"ZB{n:06d}".encode()
            record.ascii_marker = f"ZB{n:06d}"
        elif vr == "SQ":
            item = Dataset()
            item.PatientName = f"{word}^Inner"
            value = Sequence([item])
            record.vr = "PN"  # what is searched for is the name in the item
            record.under_sequence_item = True
        else:
            value = {"US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 7.0, "FD": 7.0, "AT": 0x00100010}.get(vr, b"\x00\x00")
            record.ascii_marker = None
        self.planted.append(record)
        return value

    def fill(self, dataset: Dataset, where: str, rows: list[dict[str, object]]) -> None:
        for row in rows:
            tag = int(str(row["tag_value"]))
            vr = _vr(tag)
            dataset.add_new(tag, vr, self.value(vr, f"{where}({row['tag']})", row))


def _instance(charset: str, syntax: str, rows: list[dict[str, object]]) -> tuple[bytes, list[Planted]]:
    planter = Planter(charset)
    ds = Dataset()
    ds.SpecificCharacterSet = planter.charset_value
    planter.fill(ds, "", rows)
    # Depth 1 in a sequence the table keeps and in one it does not name; depths 2 and 3 beneath them.
    kept, unnamed, deeper, deepest = Dataset(), Dataset(), Dataset(), Dataset()
    for item, where in (
        (kept, "(0040,A730)[0]/"),
        (unnamed, "(0008,2218)[0]/"),
        (deeper, "(0040,A730)[0]/(0008,2218)[0]/"),
        (deepest, "(0040,A730)[0]/(0008,2218)[0]/(0040,A730)[0]/"),
    ):
        planter.fill(item, where, rows)
    for item in (kept, deeper, deepest):
        item.ReferencedSOPClassUID = CT_IMAGE
        item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.9"
    deeper.add_new(KEPT_SEQUENCE, "SQ", Sequence([deepest]))
    kept.add_new(UNNAMED_SEQUENCE, "SQ", Sequence([deeper]))
    ds.add_new(KEPT_SEQUENCE, "SQ", Sequence([kept]))
    ds.add_new(UNNAMED_SEQUENCE, "SQ", Sequence([unnamed]))
    _identify(ds, syntax)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), planter.planted


def must_remove(planted: Planted, options: frozenset[Option]) -> bool:
    """Whether the row's action under ``options`` leaves nothing of the original value."""
    if planted.under_sequence_item:
        return True  # a Patient's Name (Z, whatever the options) inside the sequence's item
    row = planted.row
    action = table_action(str(row["basic"]), dict(row["options"]), options)  # type: ignore[arg-type]
    if action.is_compound:
        return True  # every alternative of a compound code (X, Z, D, U) removes the value
    if action is Action.K:
        return False
    if action is Action.C:
        if planted.vr == "PN":
            return True  # a name under C is replaced
        return planted.vr in ("DA", "DT") and Option.RetainLongModifDates in options  # shifted
    return True


def _encoded_forms(planter_charset: str, word: str) -> dict[str, bytes]:
    charset_value = CHARSETS[planter_charset][0]
    encodings = [charset_value] if isinstance(charset_value, str) else charset_value
    forms = {
        "utf-8": word.encode("utf-8"),
        "utf-16-le": word.encode("utf-16-le"),
        "utf-16-be": word.encode("utf-16-be"),
    }
    declared = encode_string(word, convert_encodings(encodings))
    forms["declared"] = declared
    forms["declared, no escapes"] = declared.replace(b"\x1b$B", b"").replace(b"\x1b(B", b"").replace(b"\x1b(J", b"")
    return forms


def leaks(output: bytes, planted: list[Planted], options: frozenset[Option], charset: str) -> list[str]:
    found = []
    for record in planted:
        if not must_remove(record, options):
            continue
        if record.ascii_marker is not None:
            forms = forms_found(output, record.ascii_marker)
            if forms:
                found.append(f"{record.where} [{record.row['basic']}] {record.vr}: {', '.join(forms)}")
        for word in ([record.script_word] if record.script_word else []) + record.extra:
            for name, form in _encoded_forms(charset, word).items():
                if form and form in output:
                    found.append(f"{record.where} [{record.row['basic']}] {record.vr} script word: {name}")
    return found


def _run(charset: str, syntax: str, options: frozenset[Option]) -> None:
    rows = _rows()
    data, planted = _instance(charset, syntax, rows)
    profile = basic_profile(options)
    output, _ = anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=HASHER))
    assert sum(must_remove(p, options) for p in planted) > 1000
    problems = leaks(output, planted, options, charset)
    assert not problems, f"{len(problems)} markers left:\n" + "\n".join(problems[:80])
    report = verify_bytes(data, output, profile)
    assert report.clean, [leak.describe() for leak in report.leaks][:20]


def _ids(options: frozenset[Option]) -> str:
    return "+".join(sorted(options)) or "Basic"


FAST = [
    ("latin1", "explicit-le", KEEP_MOST),
    ("utf8", "implicit-le", frozenset()),
    ("jis", "explicit-le", KEEP_MOST_SHIFTED),
    ("gb18030", "big", KEEP_MOST),
    ("cyrillic", "implicit-le", frozenset()),
]


@pytest.mark.parametrize(
    ("charset", "syntax", "options"), FAST, ids=lambda v: _ids(v) if isinstance(v, frozenset) else v
)
def test_no_planted_marker_survives(charset: str, syntax: str, options: frozenset[Option]) -> None:
    _run(charset, syntax, options)


@pytest.mark.skipif(not LONG, reason="exhaustive: HYPOTHESIS_PROFILE=long (make soak)")
@pytest.mark.parametrize("options", [*OPTION_SETS, KEEP_MOST, KEEP_MOST_SHIFTED], ids=_ids)
@pytest.mark.parametrize("syntax", list(SYNTAXES))
@pytest.mark.parametrize("charset", list(CHARSETS))
def test_no_planted_marker_survives_everywhere(charset: str, syntax: str, options: frozenset[Option]) -> None:
    _run(charset, syntax, options)


def test_the_search_and_the_residual_check_find_a_marker_written_back() -> None:
    """The test can fail: a removed attribute's marker written into a kept one is found by the byte search and by
    the residual-PHI check."""
    rows = _rows()
    data, planted = _instance("jis", "explicit-le", rows)
    profile = basic_profile()
    output, _ = anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=HASHER))
    other_name = next(p for p in planted if p.where == "(0010,1001)")  # Other Patient Names
    tampered = dcmread(BytesIO(output))
    tampered.add_new(0x00091010, "LO", dcmread(BytesIO(data)).PatientID)
    tampered.add_new(0x00090010, "LO", "ZZ TEST")
    tampered.StudyDescription = f"seen {other_name.script_word}"
    buffer = BytesIO()
    tampered.save_as(buffer, enforce_file_format=True)
    written = buffer.getvalue()
    problems = leaks(written, planted, frozenset(), "jis")
    assert any(p.startswith("(0010,0020)") for p in problems)
    assert any(p.startswith("(0010,1001)") and "script word" in p for p in problems)
    report = verify_bytes(data, written, profile)
    assert not report.clean
    places = {leak.path for leak in report.leaks}
    assert "0009,1010" in places, places
    assert "0008,1030" in places, places


def _identify(ds: Dataset, syntax: str) -> None:
    """A CT instance's UIDs and a file meta in ``syntax``, set last so that no planted value overwrites them."""
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.2"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.3"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.4"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = SYNTAXES[syntax]
    ds.file_meta = meta


def _base(syntax: str = "explicit-le") -> Dataset:
    ds = Dataset()
    ds.PatientName = "Mkzorro^Jane"
    ds.PatientID = "MKPID77"
    _identify(ds, syntax)
    return ds


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _hostile_cases() -> dict[str, tuple[Dataset, list[str]]]:
    cases: dict[str, tuple[Dataset, list[str]]] = {}
    ds = _base()  # a creator that Table E.3.10-1 lists, in another case and with spaces
    ds.add_new(0x00190010, "LO", " siemens csa header ")
    ds.add_new(0x00191008, "CS", "MKSPOOFA")
    ds.add_new(0x00191009, "LO", "MKSPOOFB")
    cases["spoofed safe creator"] = (ds, ["MKSPOOFA", "MKSPOOFB"])
    ds = _base()
    item = _item(CodeMeaning="x")
    item.add_new(0x00090010, "LO", "ACME")
    item.add_new(0x00091001, "LO", "MKPRIVSEQ")
    ds.ContentSequence = Sequence([item])
    cases["private element in a kept sequence"] = (ds, ["MKPRIVSEQ"])
    ds = _base()
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID="MKOPID1", IssuerOfPatientID="MKISSUER")])
    cases["Other Patient IDs Sequence"] = (ds, ["MKOPID1", "MKISSUER"])
    ds = _base()
    ds.RequestAttributesSequence = Sequence(
        [_item(RequestedProcedureID="MKRPID", ScheduledProcedureStepID="MKSPSID", AccessionNumber="MKACC1")]
    )
    cases["Request Attributes Sequence"] = (ds, ["MKRPID", "MKSPSID", "MKACC1"])
    ds = _base()
    ds.ContentSequence = Sequence([_item(ValueType="TEXT", TextValue="seen mkzorro\x00", PersonName="MKPERSON^X")])
    cases["Content Sequence text and name"] = (ds, ["mkzorro", "MKPERSON"])
    ds = _base()
    ds.AcquisitionContextSequence = Sequence([_item(ValueType="PNAME", PersonName="MKACQ^Y")])
    cases["Acquisition Context Sequence"] = (ds, ["MKACQ"])
    ds = _base()
    ds.ReferencedPatientSequence = Sequence([_item(ReferencedSOPInstanceUID="1.2.826.0.1.3680043.77.1")])
    cases["Referenced Patient Sequence"] = (ds, ["1.2.826.0.1.3680043.77.1"])
    ds = _base()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ContentSequence = Sequence([_item(SpecificCharacterSet="ISO_IR 192", PersonName="МКИВАНОВ^Иван")])
    cases["character set changed in an item"] = (ds, ["МКИВАНОВ"])
    ds = _base()
    ds.OtherPatientNames = ["MKOPNA^A", "MKOPNB^B"]
    ds.OtherPatientIDs = ["MKOPIDA", "MKOPIDB"]
    ds.StudyDescription = "CT of\\MKZORRO"
    cases["several values, split by backslashes"] = (ds, ["MKOPNA", "MKOPNB", "MKOPIDA", "MKOPIDB", "mkzorro"])
    ds = _base()
    del ds.PatientName
    ds.add_new(0x00100010, "UN", b"MKUNPN^Jane ")
    ds.add_new(0x00101001, "UN", b"MKUNOPN^A")
    ds.add_new(0x00081070, "UN", b"MKUNOPER")
    ds.add_new(0x00081030, "UN", b"CT of MKUNPN\x00")
    cases["UN elements hiding names"] = (ds, ["MKUNPN", "MKUNOPN", "MKUNOPER"])
    ds = _base()
    ds.AccessionNumber = "MKACCN\x00\x00"
    ds.StudyID = "  MKSTID  "
    ds.add_new(0x00081155, "UI", "1.2.826.0.1.3680043.55.7\x00")
    cases["trailing NUL and padding"] = (ds, ["MKACCN", "MKSTID", "1.2.826.0.1.3680043.55.7"])
    ds = _base("implicit-le")
    ds.add_new(0x00110010, "LO", "ACME")
    ds.add_new(0x00111001, "SQ", Sequence([_item(PatientName="MKPRIVSQPN")]))
    cases["private sequence in implicit VR"] = (ds, ["MKPRIVSQPN"])
    ds = _base()
    icon = _item(Rows=1, Columns=2, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0)
    icon.add_new(0x00204000, "LT", "MKICONCOMMENT")
    ds.IconImageSequence = Sequence([icon])
    ds.add_new(0x60023000, "OW", b"MKOVL1XX")
    ds.add_new(0x60024000, "LT", "MKOVCOMMENT")
    ds.add_new(0x50023000, "OB", b"MKCURVE1")
    cases["icon, overlay and curve groups"] = (ds, ["MKICONCOMMENT", "MKOVL1XX", "MKOVCOMMENT", "MKCURVE1"])
    return cases


HOSTILE = _hostile_cases()


@pytest.mark.parametrize(
    "options",
    [frozenset(), frozenset({Option.CleanDesc, Option.CleanStructdCont, Option.RetainSafePrivate})],
    ids=_ids,
)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_placements_leave_nothing(case: str, options: frozenset[Option]) -> None:
    """Values hidden where a de-identifier might not look: none is in the output, and the residual check agrees."""
    dataset, markers = HOSTILE[case]
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    profile = basic_profile(options)
    output, _ = anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=HASHER))
    left = {marker: forms_found(output, marker) for marker in markers}
    assert not {marker: forms for marker, forms in left.items() if forms}
    assert verify_bytes(data, output, profile).clean


def _untabled_tag(vr: str) -> int:
    """A standard attribute of ``vr`` that Table E.1-1 does not name (kept by the table, walked by its VR)."""
    from pydicom.datadict import DicomDictionary

    named = {int(str(row["tag_value"])) for row in _rows()} | {0x00080005}  # and not Specific Character Set
    return next(
        tag
        for tag, entry in sorted(DicomDictionary.items())
        if entry[0] == vr and entry[3] == "" and tag not in named and 0x0008 <= tag >> 16 < 0x6000
    )


STRING_VRS_IN_ITEMS = ("SH", "LO", "CS", "ST", "LT", "UT", "UC", "PN")  # (the table names every AE attribute)


@pytest.mark.parametrize(
    "options",
    [frozenset(), frozenset({Option.CleanStructdCont}), frozenset({Option.CleanDesc, Option.CleanStructdCont})],
    ids=_ids,
)
def test_a_name_in_any_string_element_of_a_kept_sequence_item_is_removed(options: frozenset[Option]) -> None:
    """Content Sequence is D under Basic, C under Clean Structured Content: either way, the patient's name or ID
    written into an attribute the table does not name, of any string VR, in an item at depth 1 or 2, is gone
    (D used to keep codes and labels in SH, LO and CS untouched: more than C kept)."""
    ds = _base()
    ds.PatientName = "Mkzorro^Jane"
    ds.PatientID = "MKPID77"
    inner, outer = Dataset(), Dataset()
    for item in (inner, outer):
        for vr in STRING_VRS_IN_ITEMS:
            value = "MKZORRO" if vr == "CS" else "seen Mkzorro id MKPID77"
            item.add_new(_untabled_tag(vr), vr, value)
    outer.ContentSequence = Sequence([inner])
    ds.ContentSequence = Sequence([outer])
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    profile = basic_profile(options)
    output, _ = anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=HASHER))
    assert forms_found(output, "mkzorro") == []
    assert forms_found(output, "MKPID77") == []
    assert verify_bytes(data, output, profile).clean
    kept = dcmread(BytesIO(output)).ContentSequence[0]
    assert _untabled_tag("LO") in kept  # the structure stays


def _anonymized(ds: Dataset, options: frozenset[Option]) -> tuple[bytes, bytes]:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data, anonymize_bytes(data, AnonymizationSettings(profile=basic_profile(options), hasher=HASHER))[0]


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x1f", "\x7f"])
@pytest.mark.parametrize("vr", ["LO", "ST", "LT", "UT"])
def test_a_name_broken_by_a_control_character_is_cleaned_and_found(vr: str, control: str) -> None:
    """A NUL (or another control character no text VR allows) inside a word hid it from cleaning; it is dropped
    from cleaned text, and the residual check reads through it."""
    ds = _base()
    ds.PatientName = "Mkzorro^Jane"
    tag = {"LO": 0x00081030, "ST": 0x00324000, "LT": 0x00104000, "UT": 0x00400280}[vr]  # C under CleanDesc
    ds.add_new(tag, vr, f"seen Mkz{control}orro today")
    options = frozenset({Option.CleanDesc})
    data, output = _anonymized(ds, options)
    assert forms_found(output.replace(control.encode(), b""), "mkzorro") == []
    assert verify_bytes(data, output, basic_profile(options)).clean
    tampered = dcmread(BytesIO(output))
    tampered.add_new(0x00204000, "LT", f"again MKZ{control}ORRO")  # Image Comments: written back
    buffer = BytesIO()
    tampered.save_as(buffer, enforce_file_format=True)
    assert "0020,4000" in {leak.path for leak in verify_bytes(data, buffer.getvalue(), basic_profile(options)).leaks}


@pytest.mark.parametrize("options", [frozenset(), KEEP_MOST], ids=_ids)
def test_specific_character_set_keeps_only_defined_terms(options: frozenset[Option]) -> None:
    """Specific Character Set is copied to the output: a word that is no defined term (a name) is dropped, at the
    top and in items; a misspelt term is corrected, so the text it encodes still reads."""
    ds = _base()
    ds.SpecificCharacterSet = ["iso ir 100", "MKZORRO"]
    item = _item(SpecificCharacterSet="MKZORRO2", CodeValue="1", CodingSchemeDesignator="99X", CodeMeaning="x")
    ds.AnatomicRegionSequence = Sequence([item])
    ds.StudyDescription = "Thorax Hüfte"
    _, output = _anonymized(ds, options)
    assert forms_found(output, "MKZORRO") == []
    after = dcmread(BytesIO(output))
    assert after.SpecificCharacterSet == "ISO_IR 100"
    assert "SpecificCharacterSet" not in after.AnatomicRegionSequence[0]
    if Option.CleanDesc in options:
        assert after.StudyDescription == "Thorax Hüfte"


def _safe_private_by_vr() -> dict[str, dict[str, str]]:
    """One Table E.3.10-1 element for each VR the table gives (the first listed)."""
    from orthanc_anonymizer.deid.walk import _safe_private_index

    _safe_private_index()  # the table is loaded the way the engine loads it
    import json
    from importlib import resources

    rows = json.loads(resources.files("orthanc_anonymizer.deid.standard").joinpath("safe_private.json").read_text())[
        "rows"
    ]
    chosen: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["vr"] in ("LO", "SH", "CS", "ST", "LT", "DS", "IS", "FL", "FD", "US", "UL", "SS", "SL"):
            chosen.setdefault(row["vr"], row)
    return chosen


SAFE_PRIVATE = _safe_private_by_vr()
GENUINE = {"LO": "HEAD FIRST", "SH": "AXIAL", "CS": "PRIMARY", "ST": "a note", "LT": "a note", "DS": "1.5", "IS": "3"}


@pytest.mark.parametrize("syntax", ["explicit-le", "implicit-le"])
@pytest.mark.parametrize("vr", sorted(SAFE_PRIVATE))
def test_a_name_in_a_safe_private_element_is_cleaned(vr: str, syntax: str) -> None:
    """RetainSafePrivate is C (clean) in Table E.1-1: Table E.3.10-1 says what a vendor writes in an element, not
    what a given file holds there. The patient's name or ID written into a safe element of any VR (as text, as text
    where the table gives a number, as the bytes of an implicit VR file) is gone; a genuine value stays."""
    row = SAFE_PRIVATE[vr]
    group, element = int(row["tag"][:4], 16), int(row["tag"][-2:], 16)
    creator, tag = group << 16 | 0x0010, group << 16 | 0x1000 | element
    options = frozenset({Option.RetainSafePrivate})
    for planted in (b"Mkzorro^Jane    ", b"x MKPID77 ".ljust(16, b"\x00"), None):  # 16 bytes: any number VR
        ds = _base(syntax)
        ds.PatientName = "Mkzorro^Jane"
        ds.PatientID = "MKPID77"
        ds.add_new(creator, "LO", row["private_creator"])
        if planted is None:
            value: object = GENUINE.get(vr, 1)
            ds.add_new(tag, vr, [1.0] if vr in ("FL", "FD") else value)
        elif syntax == "implicit-le" or vr not in ("LO", "SH", "CS", "ST", "LT"):
            ds[tag] = DataElement(tag, "UN" if syntax == "implicit-le" else "OB", planted)
        else:
            ds.add_new(tag, vr, planted.decode())
        data, output = _anonymized(ds, options)
        assert forms_found(output, "mkzorro") == []
        assert forms_found(output, "MKPID77") == []
        assert verify_bytes(data, output, basic_profile(options)).clean
        if planted is None:
            assert tag in dcmread(BytesIO(output))


@pytest.mark.parametrize("options", [frozenset(), KEEP_MOST], ids=_ids)
def test_file_meta_and_directory_elements_in_the_data_set_are_removed(options: frozenset[Option]) -> None:
    """File meta elements (group 0002) in an item, and directory elements (group 0004) anywhere in an instance that
    is no DICOMDIR, belong to no attribute of the instance: none of their values reaches the output."""
    ds = _base()
    markers = ["MKAEITEM", "1.2.826.0.1.3680043.88.1", "MKFILESET", "MKREFFILE", "MKFSITEM"]
    item = _item(CodeValue="1", CodingSchemeDesignator="99X", CodeMeaning="x")
    item.add_new(0x00020016, "AE", "MKAEITEM")  # Source Application Entity Title
    item.add_new(0x00020100, "UI", "1.2.826.0.1.3680043.88.1")  # Private Information Creator UID
    item.add_new(0x00041130, "CS", "MKFSITEM")  # File-set ID
    ds.AnatomicRegionSequence = Sequence([item])
    ds.add_new(0x00041130, "CS", "MKFILESET")
    ds.add_new(0x00041500, "CS", ["DIR", "MKREFFILE"])  # Referenced File ID
    _, output = _anonymized(ds, options)
    assert {marker: forms_found(output, marker) for marker in markers} == {marker: [] for marker in markers}


def test_a_reports_codes_stay_under_basic() -> None:
    """Cleaning the codes of a Content Sequence under D takes names and IDs only: reportsi.dcm's placeholder names
    ("Enter text") leave its concept names ("Report Text", "Recording Observer's Name") as they were."""
    from collections import Counter

    from pydicom.data import get_testdata_file

    data = Path(str(get_testdata_file("reportsi.dcm"))).read_bytes()
    output, _ = anonymize_bytes(data, AnonymizationSettings(profile=basic_profile(), hasher=HASHER))

    def codes(raw: bytes) -> Counter[str]:
        keywords = ("CodeValue", "CodeMeaning", "CodingSchemeDesignator")
        return Counter(str(e.value) for e in dcmread(BytesIO(raw)).iterall() if e.keyword in keywords)

    assert not codes(data) - codes(output)
