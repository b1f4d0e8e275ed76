"""Pixel redaction rules as data (profiles/pixel-redaction/): parsing, errors naming the place, and matching by
attribute values with wildcards, lists and numbers, in the spirit of RSNA CTP's pixel anonymizer scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.pixels import (
    SHIPPED_RULES_DIRECTORY,
    load_redaction_rules,
    parse_redaction_rules,
    shipped_redaction_rules,
)
from orthanc_anonymizer.errors import ProfileError


def rule(match: dict[str, object], **extra: object) -> str:
    return json.dumps(
        [{"Name": "r", "Match": match, "Regions": [{"Left": 0, "Top": 0, "Width": 1, "Height": 1}], **extra}]
    )


def instance(**attributes: object) -> Dataset:
    dataset = Dataset()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


@pytest.mark.parametrize(
    ("match", "attributes", "expected"),
    [
        ({"Modality": "US"}, {"Modality": "US"}, True),
        ({"Modality": "us"}, {"Modality": "US"}, True),
        ({"Modality": "US"}, {"Modality": "CT"}, False),
        ({"Manufacturer": "ACME*"}, {"Manufacturer": "Acme Medical Systems"}, True),
        ({"Manufacturer": "*medical*"}, {"Manufacturer": "Acme Medical Systems"}, True),
        ({"Manufacturer": "ACME"}, {"Manufacturer": "Acme Medical Systems"}, False),
        ({"ManufacturerModelName": ["Sonix 1?", "Vivid*"]}, {"ManufacturerModelName": "Sonix 12"}, True),
        ({"ManufacturerModelName": ["Sonix 1?", "Vivid*"]}, {"ManufacturerModelName": "Sonix 120"}, False),
        ({"Rows": 480, "Columns": 640}, {"Rows": 480, "Columns": 640}, True),
        ({"Rows": 480, "Columns": 640}, {"Rows": 480, "Columns": 800}, False),
        ({"Rows": "4*"}, {"Rows": 480}, True),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.4"}, False),
        ({"ImageType": "DERIVED\\SECONDARY*"}, {"ImageType": ["DERIVED", "SECONDARY", "OTHER"]}, True),
        ({"Manufacturer": "*"}, {}, True),  # absent is empty text, which * matches
        ({"Manufacturer": "?*"}, {}, False),  # at least one character: present and not empty
        ({}, {"Modality": "MR"}, True),  # no condition: every image
        ({"Modality": "US", "Manufacturer": "ACME*"}, {"Modality": "US", "Manufacturer": "Other"}, False),
    ],
)
def test_matching(match: dict[str, object], attributes: dict[str, object], expected: bool) -> None:
    (parsed,) = parse_redaction_rules(rule(match), "test")
    assert parsed.matches(instance(**attributes)) is expected


def test_regions_in_pixels_and_percent_clipped_to_the_image() -> None:
    text = json.dumps(
        {
            "Description": "d",
            "Rules": [
                {
                    "Name": "r",
                    "Regions": [
                        {"Left": 0, "Top": 0, "Width": "100%", "Height": "10%"},
                        {"Left": 600, "Top": 470, "Width": 100, "Height": 100},
                    ],
                }
            ],
        }
    )
    (parsed,) = parse_redaction_rules(text, "test")
    assert [region.box(480, 640) for region in parsed.regions] == [(0, 0, 640, 48), (600, 470, 640, 480)]
    assert parsed.ocr is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", r"test, line 1: not valid JSON"),
        ('{"Rules": [], "Colour": 1}', r"test: unknown key 'Colour' in the rule file"),
        ('[{"Match": {}}]', r"test: Rules\[0\]: a rule needs a Name"),
        ('[{"Name": "a", "Ocr": false}]', r"Rules\[0\]: a rule needs Regions or Ocr true"),
        ('[{"Name": "a", "Ocr": true, "Match": {"Modalty": "US"}}]', r"Match.Modalty: unknown attribute keyword"),
        ('[{"Name": "a", "Ocr": true, "Match": {"Modality": []}}]', r"Match.Modality: an empty list matches nothing"),
        (
            '[{"Name": "a", "Regions": [{"Left": 0, "Top": 0, "Width": 5}]}]',
            r"Rules\[0\]: Regions\[0\]: missing Height",
        ),
        (
            '[{"Name": "a", "Regions": [{"Left": -1, "Top": 0, "Width": 5, "Height": 5}]}]',
            r"Regions\[0\].Left: negative pixels",
        ),
        (
            '[{"Name": "a", "Regions": [{"Left": "120%", "Top": 0, "Width": 5, "Height": 5}]}]',
            r"Regions\[0\].Left: percentage '120%' outside",
        ),
        ('[{"Name": "a", "Ocr": "yes"}]', r"Rules\[0\]: Ocr must be true or false"),
    ],
)
def test_errors_name_the_place(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_redaction_rules(text, "test")


def test_folder_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('[{"Name": "second", "Ocr": true}]', encoding="utf-8")
    (tmp_path / "a.json").write_text('{"Rules": [{"Name": "first", "Ocr": true}]}', encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a rule file", encoding="utf-8")
    assert [rule.name for rule in load_redaction_rules(tmp_path)] == ["first", "second"]
    with pytest.raises(ProfileError, match="does not exist"):
        load_redaction_rules(tmp_path / "missing")


def test_shipped_starter_set_loads_and_selects_ultrasound_and_captures() -> None:
    assert SHIPPED_RULES_DIRECTORY.is_dir()
    rules = shipped_redaction_rules()
    names = {rule.name for rule in rules}
    assert {"us-top-banner", "secondary-capture-ocr"} <= names

    def matching(**attributes: object) -> set[str]:
        return {rule.name for rule in rules if rule.matches(instance(**attributes))}

    assert matching(Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.6.1") == {"us-top-banner"}
    assert matching(Modality="", SOPClassUID="1.2.840.10008.5.1.4.1.1.3.1") == {"us-top-banner"}
    assert matching(Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.7") == {
        "us-secondary-capture-banner",
        "secondary-capture-ocr",
    }
    assert matching(Modality="OT", SOPClassUID="1.2.840.10008.5.1.4.1.1.7.4") == {
        "secondary-capture-ocr",
        "other-modality-ocr",
    }
    # Enhanced US Volume is reconstructed: no banner to black out, and its slices must stay whole.
    assert matching(Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.6.2") == set()
    assert matching(Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2") == set()
    assert matching(Modality="SEG", SOPClassUID="1.2.840.10008.5.1.4.1.1.66.4") == set()
    assert matching(Modality="XC", SOPClassUID="1.2.840.10008.5.1.4.1.1.77.1.4") == set()


def test_the_profiles_folder_does_not_take_the_rules_folder_for_a_profile() -> None:
    from orthanc_anonymizer.deid.profile_files import load_profiles

    profiles = load_profiles(SHIPPED_RULES_DIRECTORY.parent)
    assert "pixel-redaction" not in profiles and "starter" not in profiles


def test_the_starter_rules_ship_in_the_package_and_a_site_adds_its_own_in_the_checkout_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import orthanc_anonymizer

    rules_module = sys.modules[shipped_redaction_rules.__module__]  # where the site's folder is read from
    package = Path(orthanc_anonymizer.__file__).resolve().parent
    assert package / "profiles" / "pixel-redaction" == SHIPPED_RULES_DIRECTORY
    checkout = Path(__file__).resolve().parents[2]
    assert checkout / "profiles" / "pixel-redaction" == rules_module.SITE_RULES_DIRECTORY
    site = tmp_path / "pixel-redaction"
    site.mkdir()
    (site / "acme.json").write_text(rule({"Manufacturer": "ACME*"}).replace('"r"', '"acme-banner"'), encoding="utf-8")
    monkeypatch.setattr(rules_module, "SITE_RULES_DIRECTORY", site)
    shipped_redaction_rules.cache_clear()
    try:
        names = [rule.name for rule in shipped_redaction_rules()]
    finally:
        shipped_redaction_rules.cache_clear()
    starter = [rule.name for rule in load_redaction_rules(SHIPPED_RULES_DIRECTORY)]
    assert names == [*starter, "acme-banner"]
