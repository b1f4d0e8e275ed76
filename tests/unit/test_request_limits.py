"""What one request may ask for: body size, rule count, batch size (settings of the "Anonymizer" section), and the
PatientName/PatientID a caller chooses (their value representations, PS3.5 6.2). A request over a limit is refused
naming it, before any work starts; job and audit records hold a digest and a count of the rules, never the rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.identity import ValueRejected, check_patient_id, check_patient_name, encodable
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.errors import AnonymizationError
from orthanc_anonymizer.server.api import BadRequest, RequestTooLarge, parse_anonymize, parse_batch
from orthanc_anonymizer.server.config import AnonymizerConfig, ConfigurationError, RequestLimits, parse_configuration
from orthanc_anonymizer.server.job_records import JobSettings

CONFIG = AnonymizerConfig(secret=b"s", limits=RequestLimits(body_bytes=4096, rules=3, batch_resources=2))


def parse(section: dict[str, object]) -> AnonymizerConfig:
    return parse_configuration({"Anonymizer": {"Secret": "s", **section}}, {}, Path("/srv/orthanc"))


# -- configuration ------------------------------------------------------------------------------------------------


def test_limits_have_defaults_and_can_be_set() -> None:
    assert parse({}).limits == RequestLimits(body_bytes=1048576, rules=1000, batch_resources=10000)
    chosen = parse({"MaximumRequestBytes": 65536, "MaximumRules": 0, "MaximumBatchResources": 50}).limits
    assert chosen == RequestLimits(body_bytes=65536, rules=0, batch_resources=50)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("MaximumRequestBytes", "1MB", "expected a whole number"),
        ("MaximumRequestBytes", 100, "out of range"),
        ("MaximumRules", -1, "out of range"),
        ("MaximumRules", True, "expected a whole number"),
        ("MaximumBatchResources", 0, "out of range"),
        ("MaximumBatchResources", 2.5, "expected a whole number"),
    ],
)
def test_a_wrong_limit_stops_start_up_naming_it(key: str, value: object, says: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^Anonymizer\.{key}: .*{says}"):
        parse({key: value})


# -- request bodies -----------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_naming_it_whatever_it_holds() -> None:
    fits = json.dumps({"PatientID": "X" * 10}).encode().ljust(4096)
    assert parse_anonymize(fits, CONFIG).settings.patient_id == "X" * 10
    for body in (fits + b" ", b"x" * 10_000_000, b"[" * 5000):
        with pytest.raises(
            RequestTooLarge, match=r"^body: \d+ bytes, more than Anonymizer\.MaximumRequestBytes \(4096\)"
        ):
            parse_anonymize(body, CONFIG)
        with pytest.raises(RequestTooLarge, match="MaximumRequestBytes"):
            parse_batch(body, CONFIG)


@pytest.mark.parametrize(
    "rules",
    [
        [{"Tag": f"0008,{0x1010 + n:04X}", "Action": "X"} for n in range(4)],
        "\n".join(f"0008,{0x1010 + n:04X};X" for n in range(4)),  # CSV text: counted once parsed
    ],
)
def test_more_rules_than_the_limit_are_400_naming_it(rules: object) -> None:
    with pytest.raises(BadRequest, match=r"^Rules: 4 rules, more than Anonymizer\.MaximumRules \(3\)$"):
        parse_anonymize(json.dumps({"Rules": rules}).encode(), CONFIG)
    with pytest.raises(BadRequest, match="MaximumRules"):
        parse_batch(json.dumps({"Level": "Study", "Resources": ["a"], "Rules": rules}).encode(), CONFIG)
    fitting = rules[:3] if isinstance(rules, list) else "\n".join(rules.splitlines()[:3])
    assert len(parse_anonymize(json.dumps({"Rules": fitting}).encode(), CONFIG).settings.profile.rules) == 3


def test_a_batch_over_the_limit_is_400_naming_it() -> None:
    with pytest.raises(BadRequest, match=r"^Resources: 3 IDs, more than Anonymizer\.MaximumBatchResources \(2\)$"):
        parse_batch(json.dumps({"Level": "Study", "Resources": ["a", "b", "c"]}).encode(), CONFIG)
    assert parse_batch(json.dumps({"Level": "Study", "Resources": ["a", "b"]}).encode(), CONFIG).resources == ("a", "b")


def test_records_hold_the_rules_count_and_digest_not_the_rules() -> None:
    body = {"Rules": [{"Tag": "0008,1010", "Action": "X"}, {"Tag": "0008,0070", "Action": "K"}]}
    settings = parse_anonymize(json.dumps(body).encode(), CONFIG).settings
    described = settings.describe()
    assert described["RuleCount"] == 2
    assert isinstance(described["RulesDigest"], str) and described["RulesDigest"].startswith("sha256:")
    assert len(described["RulesDigest"]) == len("sha256:") + 64
    assert "Rules" not in described and "0008,1010" not in json.dumps(described)
    # The same rules give the same digest; other rules another.
    again = parse_anonymize(json.dumps(body).encode(), CONFIG).settings.describe()
    assert again["RulesDigest"] == described["RulesDigest"]
    body["Rules"][1]["Action"] = "X"
    assert parse_anonymize(json.dumps(body).encode(), CONFIG).settings.describe()["RulesDigest"] != again["RulesDigest"]
    plain = JobSettings(profile=basic_profile([])).describe()
    assert plain["RuleCount"] == 0 and plain["RulesDigest"] is None


# -- chosen PatientName / PatientID -------------------------------------------------------------------------------

CONTROL_CHARACTERS = [chr(code) for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]
NAMES_REFUSED = [
    ("A" * 65, "component group 1 has 65 characters, at most 64"),
    ("Doe^John=" + "B" * 65, "component group 2 has 65 characters, at most 64"),
    ("a=b=c=d", "4 component groups"),
    ("a^b^c^d^e^f", "more than 5 components"),
    ("Doe\\Roe", "a backslash"),
    ("Doe\ud800", "an unpaired surrogate"),
]
IDS_REFUSED = [("X" * 65, "65 characters, at most 64"), ("A\\B", "a backslash")]


@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_character_is_refused_in_both(character: str) -> None:
    with pytest.raises(
        ValueRejected, match=rf"^PatientName: a control character \(U\+{ord(character):04X}\) at character 4$"
    ):
        check_patient_name(f"Doe{character}John")
    with pytest.raises(ValueRejected, match=r"^PatientID: a control character"):
        check_patient_id(f"ID-{character}")


@pytest.mark.parametrize(("value", "says"), NAMES_REFUSED)
def test_a_patient_name_outside_pn_is_400_naming_the_limit(value: str, says: str) -> None:
    with pytest.raises(BadRequest, match=rf"^PatientName: .*{says}") as refused:
        parse_anonymize(json.dumps({"PatientName": value}).encode(), CONFIG)
    assert value not in str(refused.value)


@pytest.mark.parametrize(("value", "says"), IDS_REFUSED)
def test_a_patient_id_outside_lo_is_400_naming_the_limit(value: str, says: str) -> None:
    with pytest.raises(BadRequest, match=rf"^PatientID: {says}"):
        parse_batch(json.dumps({"Level": "Study", "Resources": ["a"], "PatientID": value}).encode(), CONFIG)


def test_values_at_the_limits_are_accepted() -> None:
    name = "=".join("^".join(["A" * 12] * 5)[:64] for _ in range(3))
    assert check_patient_name(name) == name
    for value in ("Yamada^Tarou=山田^太郎=やまだ^たろう", "", "A" * 64):
        assert check_patient_name(value) == value
    assert check_patient_id("X" * 64) == "X" * 64


def test_encodable_follows_the_character_set() -> None:
    assert encodable("Doe^John", ["ascii"]) and not encodable("Müller", ["ascii"])
    assert encodable("Müller", ["latin_1"]) and not encodable("山田", ["latin_1"])
    assert encodable("山田", ["UTF8"])
    assert encodable("Yamada=山田", ["ascii", "iso2022_jp"])  # each character in one of the code extensions


def chosen_name(name: str, character_set: str | None) -> bytes:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    if character_set is None:
        del dataset.SpecificCharacterSet
    else:
        dataset.SpecificCharacterSet = character_set
    buffer = BytesIO()
    dataset.save_as(buffer)
    settings = AnonymizationSettings(profile=basic_profile([]), hasher=KeyedHasher(b"k"), patient_name=name)
    return anonymize_bytes(buffer.getvalue(), settings)[0]


def test_a_chosen_name_the_instance_cannot_hold_fails_the_instance_instead_of_being_mangled() -> None:
    for name, character_set in (("Müller^Jürgen", None), ("山田^太郎", "ISO_IR 100")):
        with pytest.raises(AnonymizationError, match=r"^0010,0010 PatientName: .*Specific Character Set") as failed:
            chosen_name(name, character_set)
        assert name not in str(failed.value)
    for name, character_set in (("Müller^Jürgen", "ISO_IR 100"), ("山田^太郎", "ISO_IR 192"), ("Doe^John", None)):
        written: Dataset = dcmread(BytesIO(chosen_name(name, character_set)))
        assert str(written.PatientName) == name


# -- the CLI ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--patient-name", "Doe\x1bJohn", "a control character (U+001B)"),  # argv cannot hold a NUL
        ("--patient-name", "D" * 65, "component group 1 has 65 characters, at most 64"),
        ("--patient-id", "X" * 65, "65 characters, at most 64"),
    ],
)
def test_the_cli_checks_chosen_values_the_same_way(tmp_path: Path, option: str, value: str, says: str) -> None:
    cli = Path(sys.executable).parent / "orthanc-anonymizer"
    source = get_testdata_file("CT_small.dcm")
    result = subprocess.run(
        [str(cli), "anonymize", source, str(tmp_path / "out.dcm"), option, value],
        capture_output=True,
        text=True,
        env={**os.environ, "ANONYMIZER_SECRET": "cli"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"error: {option}: {says}" in result.stderr, result.stderr
    assert not (tmp_path / "out.dcm").exists()
