"""Custom rules and named profiles from CSV, JSON and XML: what a site administrator writes and what they see."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest

import orthanc_anonymizer
from orthanc_anonymizer.deid.profile_files import (
    SHIPPED_DIRECTORY,
    load_profile_file,
    load_profiles,
    parse_rules,
    resolve_profile,
    rules_from_json,
)
from orthanc_anonymizer.deid.profiles import Action, Option, Rule
from orthanc_anonymizer.errors import ProfileError

SHIPPED = SHIPPED_DIRECTORY
USER_FOLDER = Path(__file__).resolve().parents[2] / "profiles"

PATIENT_NAME = 0x00100010
PATIENT_AGE = 0x00101010
CURVE_DATA = 0x50023000


def as_pairs(rules: list[Rule]) -> list[tuple[str, str]]:
    return [(rule.pattern.text, rule.action.value) for rule in rules]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the same rules in each format ---------------------------------------------------------------------------------

SAME_RULES = {
    "csv": "# site rules\nTag;Action\n\n0010,0010;Z\n(0010,1010);k;PatientAge\n50xx,xxxx;X\n",
    "json": json.dumps(
        [
            {"Tag": "0010,0010", "Action": "Z"},
            {"Tag": "(0010,1010)", "Action": "k", "Comment": "PatientAge"},
            {"Tag": "50xx,xxxx", "Action": "X"},
        ]
    ),
    "xml": """<?xml version="1.0"?>
<!-- site rules -->
<rules>
  <rule tag="0010,0010" action="Z"/>
  <rule tag="(0010,1010)" action="k" comment="PatientAge"/>
  <rule tag="50xx,xxxx" action="X"/>
</rules>
""",
}


@pytest.mark.parametrize("fmt", ["csv", "json", "xml"])
def test_each_format_gives_the_same_rules_whether_named_or_guessed(fmt: str) -> None:
    expected = [("0010,0010", "Z"), ("0010,1010", "K"), ("50xx,xxxx", "X")]
    assert as_pairs(parse_rules(SAME_RULES[fmt], fmt, "site")) == expected
    assert as_pairs(parse_rules(SAME_RULES[fmt], "", "site")) == expected


@pytest.mark.parametrize("fmt", ["csv", "json", "xml"])
def test_a_rules_file_is_basic_with_its_rules_named_after_the_file(tmp_path: Path, fmt: str) -> None:
    profile = load_profile_file(write(tmp_path, f"site-rules.{fmt}", SAME_RULES[fmt]))
    assert profile.name == "site-rules"
    assert profile.options == frozenset()
    table = profile.action_table
    assert table.action_for(PATIENT_NAME) is Action.Z
    assert table.action_for(PATIENT_AGE) is Action.K  # the table says X; the rule wins
    assert table.action_for(CURVE_DATA) is Action.X


def test_csv_rules_remember_their_line_for_the_audit_trail() -> None:
    rules = parse_rules(SAME_RULES["csv"], "csv", "site.csv")
    assert [rule.source for rule in rules] == ["site.csv, line 4", "site.csv, line 5", "site.csv, line 6"]


def test_csv_accepts_quoted_fields_and_a_trailing_semicolon_from_a_spreadsheet() -> None:
    text = '\ufeff"0010,0010";"Z";\r\n00100020;X/Z/U\r\n'
    assert as_pairs(parse_rules(text, "csv", "export.csv")) == [("0010,0010", "Z"), ("0010,0020", "X/Z/U*")]


def test_an_empty_or_comment_only_file_has_no_rules() -> None:
    assert parse_rules("", "csv", "empty.csv") == []
    assert parse_rules("# nothing yet\n\n", "", "empty.csv") == []
    assert parse_rules("[]", "", "empty.json") == []
    assert parse_rules("<rules/>", "", "empty.xml") == []


# --- errors name the file, the place and the bad value ---------------------------------------------------------------


def test_csv_with_a_bad_action_on_line_3_names_file_line_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "site.csv", "0010,0010;Z\n# next one is wrong\n0010,0020;Q\n")
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 3" in message
    assert "'Q'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0010,0010;Z\n0010;Z\n", ["line 2", "'0010'"]),
        ("0010,0010\n", ["line 1", "TagPattern;Action"]),
        ("0010,0010;Z;comment;extra\n", ["line 1", "4 fields"]),
        ("0010,0010;\n", ["line 1", "missing action"]),
        ('0010,0010;"Z\n', ["line 1"]),
    ],
)
def test_malformed_csv_lines_are_named(text: str, expected: list[str]) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_rules(text, "csv", "site.csv")
    assert str(caught.value).startswith("site.csv, line")
    for part in expected:
        assert part in str(caught.value)


def test_json_rule_with_a_bad_tag_names_its_index_and_the_tag(tmp_path: Path) -> None:
    text = json.dumps({"Rules": [{"Tag": "0010,0010", "Action": "Z"}, {"Tag": "0010,001G", "Action": "X"}]})
    path = write(tmp_path, "site.json", text)
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    assert str(caught.value).startswith(f"{path}: Rules[1]: bad tag pattern '0010,001G'")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([{"Tag": "0010,0010", "Action": "Q"}], "Rules: [0]: unknown action 'Q'"),
        ([{"Tag": "0010,0010"}, {"Tag": "0010,0020"}], "Rules: [0]: missing action for tag '0010,0010'"),
        ([{"Action": "Z"}], "Rules: [0]: missing tag pattern"),
        ([{"Tag": "0010,0010", "Action": "Z", "Acton": "Z"}], "Rules: [0]: unknown key 'Acton'"),
        (["0010,0010;Z"], "Rules: [0]: expected an object"),
        ({"Tag": "0010,0010"}, "Rules: expected a list"),
        (7, "Rules: expected a list"),
    ],
)
def test_rest_body_rules_that_are_wrong_say_which_rule_and_why(value: object, expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        rules_from_json(value, "Rules")
    assert str(caught.value).startswith(expected)


def test_rest_body_rules_may_be_a_list_or_a_csv_or_xml_string() -> None:
    from_list = rules_from_json([{"Tag": "0010,0010", "Action": "Z"}], "Rules")
    from_csv = rules_from_json("0010,0010;Z", "Rules")
    from_xml = rules_from_json('<rules><rule tag="0010,0010" action="Z"/></rules>', "Rules")
    assert as_pairs(from_list) == as_pairs(from_csv) == as_pairs(from_xml) == [("0010,0010", "Z")]


def test_rules_parsing_refuses_a_whole_profile_so_its_options_are_not_silently_lost() -> None:
    with pytest.raises(ProfileError, match="whole profile"):
        rules_from_json('{"Options": ["RetainUIDs"], "Rules": []}', "Rules")
    with pytest.raises(ProfileError, match="whole profile"):
        parse_rules("<profile><option>RetainUIDs</option></profile>", "xml", "Rules")


def test_json_syntax_error_names_the_line() -> None:
    with pytest.raises(ProfileError, match=r"^site\.json, line 3: not valid JSON"):
        parse_rules('[\n{"Tag": "0010,0010", "Action": "Z"}\n,]', "json", "site.json")


def test_json_profile_with_an_unknown_option_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "site.json", json.dumps({"Options": ["CleanDesc", "RetainDates"]}))
    with pytest.raises(ProfileError, match=r"site\.json: Options\[1\]: unknown option 'RetainDates'"):
        load_profile_file(path)


def test_json_profile_with_a_misspelt_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "site.json", json.dumps({"Option": ["CleanDesc"]}))
    with pytest.raises(ProfileError, match=r"site\.json: unknown key 'Option'"):
        load_profile_file(path)


def test_xml_with_a_bad_action_names_the_line_of_its_element(tmp_path: Path) -> None:
    text = '<profile>\n  <description>x</description>\n  <rule tag="0010,0010" action="Z"/>\n\n  <rule\n    tag="0010,0020" action="W"/>\n</profile>\n'
    path = write(tmp_path, "site.xml", text)
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    assert str(caught.value).startswith(f"{path}, line 5: unknown action 'W'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<rules><rule tag='0010,0010' action='Z'></rules>", "line 1: not well-formed XML"),
        ("<rules>\n<option>CleanDesc</option></rules>", "line 2: unknown element <option> in <rules>"),
        ("<profile>\n<rule tag='0010,0010' act='Z'/></profile>", "line 2: unknown attribute 'act'"),
        ("<profile>\n\n<option>Clean</option></profile>", "line 3: unknown option 'Clean'"),
        ("<profiles/>", "line 1: unknown root element <profiles>"),
    ],
)
def test_malformed_xml_is_named_by_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "site.xml", text)
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    assert str(caught.value).startswith(f"{path}, {expected}")


@pytest.mark.parametrize(
    "text",
    [
        '<!DOCTYPE rules [<!ENTITY lol "lol">]><rules><rule tag="0010,0010" action="&lol;"/></rules>',
        '<!DOCTYPE rules SYSTEM "http://example.com/rules.dtd"><rules/>',
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<rules>&x;</rules>',
    ],
)
def test_xml_with_a_doctype_or_entities_is_refused(text: str) -> None:
    with pytest.raises(ProfileError, match="document type and entity declarations are not allowed"):
        parse_rules(text, "xml", "evil.xml")


def test_an_undeclared_entity_is_not_expanded() -> None:
    with pytest.raises(ProfileError, match="not well-formed XML"):
        parse_rules('<rules><rule tag="0010,0010" action="&x;"/></rules>', "xml", "evil.xml")


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("# Régles\n0010,0010;Z\n".encode("latin-1"))
    with pytest.raises(ProfileError, match=f"^{path}: not UTF-8"):
        load_profile_file(path)


# --- profiles with a description, a base and options ---------------------------------------------------------------


def test_json_profile_carries_description_options_and_rules(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "Description": "Follow-up research",
            "Base": "basic",
            "Options": ["RetainLongModifDates", "CleanDesc"],
            "Rules": [{"Tag": "0010,1010", "Action": "K"}],
        }
    )
    profile = load_profile_file(write(tmp_path, "follow-up.json", text))
    assert profile.name == "follow-up"
    assert profile.description == "Follow-up research"
    assert profile.options == {Option.RetainLongModifDates, Option.CleanDesc}
    assert as_pairs(list(profile.rules)) == [("0010,1010", "K")]
    assert profile.source == str(tmp_path / "follow-up.json")


def test_xml_profile_carries_description_options_and_rules(tmp_path: Path) -> None:
    text = """<profile name="follow-up" base="basic">
  <description>  Follow-up
     research </description>
  <option>RetainLongModifDates</option>
  <option> CleanDesc </option>
  <rule tag="0010,1010" action="K"/>
</profile>"""
    profile = load_profile_file(write(tmp_path, "follow-up.xml", text))
    assert (profile.name, profile.description) == ("follow-up", "Follow-up research")
    assert profile.options == {Option.RetainLongModifDates, Option.CleanDesc}
    assert as_pairs(list(profile.rules)) == [("0010,1010", "K")]


def test_a_profile_builds_on_another_profile_of_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "site.csv", "0010,1010;K\n0010,0040;K\n")
    write(tmp_path, "site-research.json", json.dumps({"Base": "site", "Options": ["CleanDesc"]}))
    write(
        tmp_path,
        "site-research-strict.xml",
        '<profile base="site-research"><rule tag="0010,0040" action="X"/></profile>',
    )
    strict = load_profiles(tmp_path)["site-research-strict"]
    assert strict.options == {Option.CleanDesc}
    assert as_pairs(list(strict.rules)) == [("0010,1010", "K"), ("0010,0040", "K"), ("0010,0040", "X")]
    assert strict.action_table.action_for(0x00100040) is Action.X  # the later rule wins


def test_base_profiles_that_loop_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.json", '{"Base": "b"}')
    write(tmp_path, "b.json", '{"Base": "a"}')
    with pytest.raises(ProfileError, match="loop: a -> b -> a"):
        load_profile_file(tmp_path / "a.json")


def test_an_unknown_base_profile_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="unknown base profile 'reserch'"):
        load_profile_file(write(tmp_path, "x.json", '{"Base": "reserch"}'))


def test_a_name_inside_the_file_must_match_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="Name 'research' differs from the file name"):
        load_profile_file(write(tmp_path, "research-v2.json", '{"Name": "research"}'))


def test_options_that_exclude_each_other_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "dates.json", '{"Options": ["RetainLongFullDates", "RetainLongModifDates"]}')
    with pytest.raises(ProfileError, match=f"^{path}: options RetainLongFullDates and RetainLongModifDates"):
        load_profile_file(path)


# --- the profiles directory ----------------------------------------------------------------------------------------


def test_every_shipped_profile_loads_with_exact_option_names() -> None:
    profiles = load_profiles(SHIPPED)
    assert {"basic", "research-longitudinal", "teaching-file", "ai-training"} <= set(profiles)
    assert any(path.suffix == ".csv" for path in SHIPPED.iterdir())
    assert any(path.suffix == ".xml" for path in SHIPPED.iterdir())
    research = profiles["research-longitudinal"]
    assert {Option.RetainLongModifDates, Option.RetainPatientChars, Option.CleanDesc} <= research.options
    assert Option.RetainDeviceIdent not in research.options  # serial numbers and room names go (issue 20)
    for name, profile in profiles.items():
        assert profile.description, name
        assert profile.action_table.action_for(PATIENT_NAME) is not None, name
    readme = (USER_FOLDER / "README.md").read_text()
    for name in profiles:
        assert f"`{name}`" in readme, f"profiles/README.md does not document {name}"


def test_the_directory_lists_basic_first_and_every_rule_file(tmp_path: Path) -> None:
    write(tmp_path, "b.csv", "0010,0010;Z\n")
    write(tmp_path, "a.json", "[]")
    write(tmp_path, "c.xml", "<rules/>")
    write(tmp_path, "notes.txt", "not a profile")
    write(tmp_path, ".hidden.csv", "garbage")
    assert list(load_profiles(tmp_path)) == ["basic", "a", "b", "c"]
    assert list(load_profiles(None)) == ["basic"]


def test_a_broken_file_in_the_directory_is_named(tmp_path: Path) -> None:
    write(tmp_path, "good.csv", "0010,0010;Z\n")
    path = write(tmp_path, "bad.json", '[{"Tag": "0010,0010", "Action": "ZZ"}]')
    with pytest.raises(ProfileError, match=f"^{path}: \\[0\\]: unknown action 'ZZ'"):
        load_profiles(tmp_path)


def test_two_files_with_one_name_or_a_file_named_basic_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "site.csv", "")
    write(tmp_path, "site.json", "[]")
    with pytest.raises(ProfileError, match="second profile named 'site'"):
        load_profiles(tmp_path)
    with pytest.raises(ProfileError, match="ambiguous"):
        resolve_profile("site", tmp_path)
    (tmp_path / "site.json").unlink()
    write(tmp_path, "basic.json", "[]")
    with pytest.raises(ProfileError, match="built-in"):
        load_profiles(tmp_path)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does-not-exist"):
        load_profiles(tmp_path / "does-not-exist")


# --- resolving the name a request gives ----------------------------------------------------------------------------


def test_a_request_names_basic_or_a_profile_of_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "site.csv", "0010,0010;Z\n")
    assert resolve_profile("basic", tmp_path).name == "basic"
    assert resolve_profile("basic", None).name == "basic"
    assert resolve_profile("site", tmp_path).name == "site"
    assert resolve_profile("site.csv", tmp_path).name == "site"


def test_an_unknown_profile_name_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "site.csv", "")
    with pytest.raises(ProfileError, match="unknown profile 'research'; known profiles: basic, site"):
        resolve_profile("research", tmp_path)
    with pytest.raises(ProfileError, match="unknown profile 'site'"):
        resolve_profile("site", None)


@pytest.mark.parametrize(
    "name", ["../secret", "../secret.json", "/etc/passwd", "sub/site", "..", ".hidden", "", "a\\b"]
)
def test_a_path_given_as_a_profile_name_is_refused(tmp_path: Path, name: str) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    write(tmp_path, "secret.json", '{"Options": ["RetainUIDs"]}')
    with pytest.raises(ProfileError):
        resolve_profile(name, profiles)


def test_the_cli_may_name_a_file_by_its_path(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    write(profiles, "mine.csv", "0010,0010;K\n")
    path = write(tmp_path, "mine.csv", "0010,0010;Z\n")
    # The explicit file wins over the directory's profile of the same name.
    assert as_pairs(list(resolve_profile(str(path), profiles, allow_paths=True).rules)) == [("0010,0010", "Z")]
    assert as_pairs(list(resolve_profile("mine", profiles, allow_paths=True).rules)) == [("0010,0010", "K")]
    with pytest.raises(ProfileError, match="no profile file at"):
        resolve_profile(str(tmp_path / "missing.csv"), profiles, allow_paths=True)
    with pytest.raises(ProfileError):
        resolve_profile(str(path), profiles)  # not without allow_paths


@pytest.mark.parametrize("name", sorted(load_profiles(SHIPPED)))
def test_each_shipped_profile_anonymizes_a_real_file(name: str) -> None:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes

    source = Path(str(get_testdata_file("CT_small.dcm")))
    output, _ = anonymize_bytes(source.read_bytes(), AnonymizationSettings(profile=resolve_profile(name, SHIPPED)))
    dataset = dcmread(BytesIO(output))
    assert dataset.PatientIdentityRemoved == "YES"
    assert dataset.PatientName != dcmread(source).PatientName


def test_hostile_rule_strings_give_a_profile_error_not_a_crash() -> None:
    for text in ["[" * 100_000, "0010,0010;Z\x00\n", "<rules>" * 100_000]:
        with pytest.raises(ProfileError):
            rules_from_json(text, "Rules")


# --- the shipped profiles and a site's own ------------------------------------------------------------------------


def test_the_shipped_profiles_are_package_data_and_the_user_folder_holds_no_copy_of_them() -> None:
    assert Path(orthanc_anonymizer.__file__).parent / "profiles" == SHIPPED
    shipped = [path.stem for path in SHIPPED.iterdir() if path.suffix in (".csv", ".json", ".xml")]
    assert {"research-longitudinal", "teaching-file", "ai-training", "dose-monitoring"} <= set(shipped)
    # A copy in the checkout's profiles/ would replace the package's own (a site's file wins): none is there.
    assert not [path for path in USER_FOLDER.iterdir() if path.stem in shipped]
    assert (USER_FOLDER / "README.md").is_file()


def shipped_names() -> list[str]:
    return sorted(path.stem for path in SHIPPED.iterdir() if path.suffix in (".csv", ".json", ".xml"))


def test_a_configured_folder_offers_its_own_files_only_never_the_shipped_ones(tmp_path: Path) -> None:
    # An administrator who points ProfilesDirectory (--profiles-dir) at a curated folder offers exactly its files:
    # a weaker shipped profile (research-longitudinal keeps shifted dates) must not reappear beside them.
    write(tmp_path, "site.csv", "0010,1010;K\n")
    assert list(load_profiles(tmp_path)) == ["basic", "site"]
    for name in shipped_names():
        for asked in (name, f"{name}.json", f"{name}.xml", f"{name}.csv"):
            with pytest.raises(ProfileError, match=f"unknown profile {asked!r}; known profiles: basic, site$"):
                resolve_profile(asked, tmp_path)
    # Nor as the Base of a site profile (a profile's Base is one of the folder's, as before the shipped profiles
    # moved into the package).
    write(tmp_path, "our-research.json", '{"Base": "research-longitudinal"}')
    with pytest.raises(ProfileError, match="unknown base profile 'research-longitudinal'"):
        load_profiles(tmp_path)
    with pytest.raises(ProfileError, match="unknown base profile 'research-longitudinal'"):
        resolve_profile("our-research", tmp_path)


def test_without_a_configured_folder_the_shipped_profiles_are_offered_and_a_site_file_replaces_one(
    tmp_path: Path,
) -> None:
    # Nothing configured, no checkout folder (an installed wheel): basic and the shipped profiles.
    assert list(load_profiles(None, shipped=True)) == ["basic", *shipped_names()]
    assert resolve_profile("research-longitudinal", None, shipped=True).source == str(
        SHIPPED / "research-longitudinal.json"
    )
    # With the default site folder (the checkout's profiles/): its files beside the shipped ones, a file named like
    # a shipped profile in its place.
    write(tmp_path, "teaching-file.csv", "0010,0010;K\n")
    write(tmp_path, "site.csv", "0010,1010;K\n")
    listed = load_profiles(tmp_path, shipped=True)
    assert list(listed) == ["basic", *sorted({*shipped_names(), "site"})]
    assert listed["teaching-file"].source == str(tmp_path / "teaching-file.csv")
    assert listed["teaching-file"].options == frozenset()
    for name in ("teaching-file", "teaching-file.json"):  # by the shipped file's full name too
        chosen = resolve_profile(name, tmp_path, shipped=True)
        assert chosen.source == str(tmp_path / "teaching-file.csv"), name
        assert as_pairs(list(chosen.rules))[-1] == ("0010,0010", "K")
    # Every other shipped profile is still there, read from the package.
    for name in set(shipped_names()) - {"teaching-file"}:
        assert listed[name].source.startswith(str(SHIPPED)), name
        assert resolve_profile(name, tmp_path, shipped=True).source == listed[name].source
    with pytest.raises(ProfileError, match="unknown profile 'nothing'; known profiles: basic, ai-training, "):
        resolve_profile("nothing", tmp_path, shipped=True)


def test_a_profile_of_the_default_site_folder_may_take_a_shipped_one_as_its_base(tmp_path: Path) -> None:
    # As when the shipped profiles were files of the checkout's profiles/ beside the site's.
    write(
        tmp_path,
        "our-research.json",
        '{"Base": "research-longitudinal", "Rules": [{"Tag": "0010,1010", "Action": "X"}]}',
    )
    profile = resolve_profile("our-research", tmp_path, shipped=True)
    assert load_profiles(tmp_path, shipped=True)["our-research"] == profile
    shipped = resolve_profile("research-longitudinal", None, shipped=True)
    assert shipped.options <= profile.options and Option.RetainLongModifDates in profile.options
    assert as_pairs(list(profile.rules)) == [*as_pairs(list(shipped.rules)), ("0010,1010", "X")]
    # A base in the site's folder wins over the shipped one of that name.
    write(tmp_path, "research-longitudinal.csv", "0008,1090;K\n")
    replaced = resolve_profile("our-research", tmp_path, shipped=True)
    assert as_pairs(list(replaced.rules)) == [("0008,1090", "K"), ("0010,1010", "X")]


def test_a_name_reaching_for_the_shipped_folder_by_path_is_refused(tmp_path: Path) -> None:
    for name in (
        "../profiles/research-longitudinal",
        "profiles/research-longitudinal.json",
        str(SHIPPED / "ai-training.json"),
    ):
        for shipped in (False, True):
            with pytest.raises(ProfileError, match="bad profile name"):
                resolve_profile(name, tmp_path, shipped=shipped)
