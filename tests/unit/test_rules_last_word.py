"""Rules are the last word (issue 14, item 4): a rule on a tag overrides every default, pseudonyms, dummies, new
UIDs and shifted dates included, at the top and inside sequence items; and a rule that keeps what the profile
removes says so in the output (Patient Identity Removed, De-identification Method) and in the job's record."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from orthanc_anonymizer.deid.actions import DUMMY_BY_VR
from orthanc_anonymizer.deid.deidentification_method import WEAKENED_CODE
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profile_files import parse_rules
from orthanc_anonymizer.deid.profiles import Option, Profile, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.weakening import IDENTITY_TAGS, Weakening, method_values, weakenings
from orthanc_anonymizer.server.job_records import JobSettings

HASHER = KeyedHasher(b"rules last word")
REFERENCED_SERIES = 0x00081115  # not in Table E.1-1: kept, its items walked


@dataclass(frozen=True)
class Attribute:
    """An attribute whose default (no rule) is not simply kept: a pseudonym, a dummy, a new UID, a shifted date."""

    name: str
    tag: int
    vr: str
    value: str
    default: str
    options: tuple[Option, ...] = ()


ATTRIBUTES = [
    Attribute("patient-name", 0x00100010, "PN", "Quillfam^Quillgiven", "pseudonym"),
    Attribute("patient-id", 0x00100020, "LO", "PID-ALPHA-77", "pseudonym"),
    Attribute("person-name", 0x0040A123, "PN", "Observer^Olga", "dummy"),
    Attribute("subject-id", 0x00120040, "LO", "SUBJ-9931", "dummy"),
    Attribute("date", 0x0040A121, "DA", "19880215", "dummy"),
    Attribute("study-uid", 0x0020000D, "UI", "1.2.826.0.1.3680043.2.1125.77", "new UID"),
    Attribute("study-date-shifted", 0x00080020, "DA", "19990312", "shifted", (Option.RetainLongModifDates,)),
]


def source(attribute: Attribute, depth: int) -> bytes:
    """CT_small with ``attribute`` at the top (depth 0) or in an item ``depth`` sequences down."""
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.PatientID = "PID-ALPHA-77"
    if depth == 0:
        dataset.add_new(attribute.tag, attribute.vr, attribute.value)
    else:
        inner = Dataset()
        inner.add_new(attribute.tag, attribute.vr, attribute.value)
        for _ in range(depth - 1):
            outer = Dataset()
            outer.add_new(REFERENCED_SERIES, "SQ", Sequence([inner]))
            inner = outer
        dataset.add_new(REFERENCED_SERIES, "SQ", Sequence([inner]))
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def run(data: bytes, profile: Profile, **chosen: Any) -> Dataset:
    output, _ = anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=HASHER, **chosen))
    return dcmread(BytesIO(output))


def at_depth(dataset: Dataset, depth: int) -> Dataset:
    for _ in range(depth):
        dataset = dataset[REFERENCED_SERIES].value[0]
    return dataset


def with_rule(attribute: Attribute, action: str) -> Profile:
    rule = f"{attribute.tag >> 16:04X},{attribute.tag & 0xFFFF:04X};{action}\n"
    return basic_profile(attribute.options).with_rules(parse_rules(rule, "csv", "test"))


def text(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


@pytest.mark.parametrize("depth", [0, 2])
@pytest.mark.parametrize("action", ["X", "Z", "D", "K", "C", "U"])
@pytest.mark.parametrize("attribute", ATTRIBUTES, ids=lambda attribute: attribute.name)
def test_each_rule_gives_exactly_its_result_whatever_the_default(attribute: Attribute, action: str, depth: int) -> None:
    data = source(attribute, depth)
    default = at_depth(run(data, basic_profile(attribute.options)), depth)
    output = at_depth(run(data, with_rule(attribute, action)), depth)
    if action == "X":
        assert attribute.tag not in output
        return
    got = text(output[attribute.tag].value)
    if action == "Z":
        assert got == ""
    elif action == "K":
        assert got == attribute.value
    elif action == "U" or (action == "D" and attribute.vr == "UI"):
        assert got == HASHER.uid(attribute.value)
    elif action == "D":
        assert got == DUMMY_BY_VR[attribute.vr]
    else:  # C: a name replaced, text cleaned (no identifying value of the instance in these), a date shifted
        expected = {"PN": DUMMY_BY_VR["PN"], "LO": attribute.value, "UI": attribute.value}.get(attribute.vr)
        if attribute.vr == "DA":
            expected = text(default[attribute.tag].value) if attribute.options else DUMMY_BY_VR["DA"]
        assert got == expected
    if depth == 0 and attribute.default == "pseudonym":
        assert got != text(default[attribute.tag].value)  # not the pseudonym the table's Z would have become


def test_patient_name_z_rule_empties_it_instead_of_the_pseudonym() -> None:
    """The issue's example, as a user writes it."""
    data = source(ATTRIBUTES[0], 0)
    output = run(data, basic_profile().with_rules(parse_rules("(0010,0010);Z\n", "csv", "test")))
    assert text(output.PatientName) == ""
    assert output.PatientIdentityRemoved == "YES"


def test_a_chosen_patient_name_wins_over_a_rule_and_is_no_weakening() -> None:
    data = source(ATTRIBUTES[0], 0)
    output = run(data, with_rule(ATTRIBUTES[0], "K"), patient_name="Chosen^Name")
    assert text(output.PatientName) == "Chosen^Name"
    assert output.PatientIdentityRemoved == "YES"
    assert not any("weakened" in value for value in output.DeidentificationMethod)


def _markers(output: Dataset) -> tuple[str, list[str], list[str]]:
    methods = list(output.DeidentificationMethod)
    codes = [item.CodeValue for item in output.DeidentificationMethodCodeSequence]
    return output.PatientIdentityRemoved, methods, codes


@pytest.mark.parametrize("tag", sorted(IDENTITY_TAGS), ids=lambda tag: IDENTITY_TAGS[tag])
@pytest.mark.parametrize("action", ["K", "C"])
def test_keeping_or_cleaning_an_identity_attribute_says_identity_not_removed(tag: int, action: str) -> None:
    rule = f"{tag >> 16:04X},{tag & 0xFFFF:04X};{action}"
    output = run(source(ATTRIBUTES[0], 0), basic_profile().with_rules(parse_rules(rule + "\n", "csv", "t")))
    removed, methods, codes = _markers(output)
    assert removed == "NO"
    assert f"weakened by: {rule}" in methods
    assert WEAKENED_CODE[0] in codes


@pytest.mark.parametrize(
    ("rules", "removed", "named"),
    [
        ("0008,0080;K\n", "YES", ["0008,0080;K"]),  # Institution Name kept: weakened, identity still removed
        ("0010,xxxx;K\n", "NO", ["0010,xxxx;K"]),  # a pattern over the patient's group
        ("0010,0010;K\n0010,xxxx;X\n", "YES", []),  # a later rule covers the keeping one
        ("0010,0010;X\n0010,0020;D\n0010,0030;Z\n0020,000D;U\n", "YES", []),  # removing, dummy, empty, UID
        ("0009,xxxx;K\n", "YES", ["0009,xxxx;K"]),  # private elements the profile removes
        ("0028,0010;K\n", "YES", []),  # kept by the table anyway
    ],
)
def test_what_the_markers_say_for_rules(rules: str, removed: str, named: list[str]) -> None:
    output = run(source(ATTRIBUTES[0], 0), basic_profile().with_rules(parse_rules(rules, "csv", "t")))
    got_removed, methods, codes = _markers(output)
    assert got_removed == removed
    assert [value for value in methods if value.startswith("weakened by")] == method_values(
        [Weakening(name, False) for name in named]
    )
    assert (WEAKENED_CODE[0] in codes) is bool(named)
    assert all(len(value) <= 64 for value in methods)


def test_many_weakening_rules_stay_within_a_few_method_values() -> None:
    removed = [tag for tag, action in basic_profile().action_table.table_exact.items() if action.value == "X"]
    rules = "".join(f"{tag >> 16:04X},{tag & 0xFFFF:04X};K\n" for tag in removed[:120])
    profile = basic_profile().with_rules(parse_rules(rules, "csv", "t"))
    values = method_values(weakenings(profile))
    assert len(values) <= 8 and values[-1].startswith("weakened by: and ")


def test_the_job_record_and_audit_settings_name_the_weakening_rules_by_tag() -> None:
    profile = basic_profile().with_rules(parse_rules("0010,0010;K\n0008,0080;K\n0010,0020;Z\n", "csv", "t"))
    described = JobSettings(profile=profile).describe()
    assert described["Weakened"] == ["0010,0010;K", "0008,0080;K"]
    assert described["PatientIdentityRemoved"] is False
    assert "Quill" not in repr(described)
    plain = JobSettings(profile=basic_profile().with_rules(parse_rules("0010,0010;Z\n", "csv", "t"))).describe()
    assert "Weakened" not in plain


def test_weakening_compares_with_the_site_profile_rules_and_options() -> None:
    site = basic_profile([Option.RetainLongModifDates]).with_rules(parse_rules("0010,1010;K\n", "csv", "site"))
    # The site's own rule and options are not the request's weakening...
    assert weakenings(site, site) == ()
    # ...rules and options the request adds are, each named, options included...
    request = site.with_options([Option.RetainSafePrivate, Option.CleanPixelData]).with_rules(
        parse_rules("0010,0020;K\n0010,0010;Z\n", "csv", "request")
    )
    assert weakenings(request, site) == (Weakening("0010,0020;K", True), Weakening("RetainSafePrivate", False))
    # ...unless a value is chosen for that very attribute.
    assert weakenings(request, site, chosen=[0x00100020]) == (Weakening("RetainSafePrivate", False),)
    # An option whose rows a site rule overrides weakens nothing there.
    assert weakenings(site.with_options([Option.RetainPatientChars]), site) == (Weakening("RetainPatientChars", False),)
    overridden = basic_profile().with_rules(
        parse_rules("0010,xxxx;X\n0038,xxxx;X\n0040,0012;X\n0072,005F;X\n", "csv", "s")
    )
    assert weakenings(overridden.with_options([Option.RetainPatientChars]), overridden) == ()


def test_a_weakened_copy_is_still_recognized_as_the_engines_own_output() -> None:
    """On ingest and in the gateway, a copy whose rules kept the patient's ID (Patient Identity Removed NO) is not an
    original to anonymize again (which would copy the copy, again and again)."""
    from orthanc_anonymizer.deid.deidentification_method import claims_engine_output

    output = run(source(ATTRIBUTES[1], 0), with_rule(ATTRIBUTES[1], "K"))
    assert output.PatientIdentityRemoved == "NO"
    tags = {"PatientIdentityRemoved": "NO", "DeidentificationMethod": "\\".join(output.DeidentificationMethod)}
    assert claims_engine_output(tags)


@pytest.mark.parametrize(
    ("options", "rules", "expected"),
    [
        ((), "", "REMOVED"),
        ((), "0008,0020;K\n", "UNMODIFIED"),  # Study Date kept as it was
        ((), "0008,0020;C\n", "REMOVED"),  # cleaned: a dummy date without a date option
        ((Option.RetainLongModifDates,), "", "MODIFIED"),
        ((Option.RetainLongModifDates,), "0008,xxxx;K\n", "UNMODIFIED"),
        ((Option.RetainLongModifDates,), "0008,0020;X\n", "MODIFIED"),
    ],
)
def test_a_rule_keeping_original_dates_says_they_are_unmodified(
    options: tuple[Option, ...], rules: str, expected: str
) -> None:
    profile = basic_profile(options)
    if rules:
        profile = profile.with_rules(parse_rules(rules, "csv", "t"))
    output = run(source(ATTRIBUTES[0], 0), profile)
    assert output.LongitudinalTemporalInformationModified == expected


def test_a_rule_that_empties_the_sop_instance_uid_is_refused_naming_it() -> None:
    from orthanc_anonymizer.errors import AnonymizationError

    with pytest.raises(AnonymizationError, match=r"0008,0018 SOP Instance UID"):
        run(source(ATTRIBUTES[0], 0), basic_profile().with_rules(parse_rules("0008,0018;Z\n", "csv", "t")))


def test_leaving_out_a_site_option_weakens_only_where_it_keeps_more() -> None:
    pixels = basic_profile([Option.CleanPixelData, Option.CleanDesc])
    assert weakenings(basic_profile([Option.CleanDesc]), pixels) == (Weakening("CleanPixelData left out", False),)
    assert weakenings(basic_profile([Option.CleanPixelData]), pixels) == ()  # CleanDesc left out: removes more
    # C over K: with both options a device's calibration date is shifted; without the date option it is kept as is.
    both = basic_profile([Option.RetainDeviceIdent, Option.RetainLongModifDates])
    (left_out,) = weakenings(basic_profile([Option.RetainDeviceIdent]), both)
    assert left_out.name == "RetainLongModifDates left out" and left_out.dates
