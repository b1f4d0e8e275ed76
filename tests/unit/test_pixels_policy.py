"""Burned In Annotation (0028,0301) under Clean Pixel Data (PS3.15 E.3.1): the profile's policy, the flag after
cleaning, instances that must be refused, and the option from profile files and the command line."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pixel_images import CT_IMAGE, PATIENT_NAME, US_IMAGE, make_instance
from pydicom import dcmread

from orthanc_anonymizer import cli
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes, write_dataset
from orthanc_anonymizer.deid.pixels import Criterion, Extent, OcrMode, PixelSettings, RedactionRule, Region, codecs
from orthanc_anonymizer.deid.profile_files import load_profile_file
from orthanc_anonymizer.deid.profiles import BurnedInAnnotationPolicy, Option, Profile, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.errors import AnonymizationError, ProfileError

SECRET = b"pixel policy secret"
BAND = (RedactionRule("band", (Criterion("Modality", 0x00080060, ("US",)),), (Region(*map(Extent, (0, 0, 320, 30))),)),)


def run(profile: Profile, data: bytes, **pixel_settings: object) -> tuple[bytes, list[str], list[dict[str, object]]]:
    settings = AnonymizationSettings(
        profile=profile, hasher=KeyedHasher(SECRET), pixels=PixelSettings(**pixel_settings)
    )  # type: ignore[arg-type]
    output, report = anonymize_bytes(data, settings)
    return output, report.warnings, report.pixel_regions


def cleaning(policy: BurnedInAnnotationPolicy = BurnedInAnnotationPolicy.Redact) -> Profile:
    return Profile(options=frozenset({Option.CleanPixelData}), burned_in_annotation=policy)


def burned_in_instance(modality: str = "US") -> bytes:
    drawn = make_instance(
        words_per_frame=[[(10, 5, PATIENT_NAME)]], sop_class=US_IMAGE, modality=modality, burned_in="YES"
    )
    return write_dataset(drawn.dataset)


def test_reject_refuses_the_instance_naming_the_tag_without_values() -> None:
    with pytest.raises(AnonymizationError) as raised:
        run(cleaning(BurnedInAnnotationPolicy.Reject), burned_in_instance(), rules=BAND)
    message = str(raised.value)
    assert "0028,0301" in message and "Reject" in message
    assert "DOE" not in message and "JANE" not in message


def test_reject_leaves_instances_without_the_flag_alone() -> None:
    drawn = make_instance(words_per_frame=[[(10, 5, PATIENT_NAME)]], sop_class=US_IMAGE, modality="US")
    output, _, regions = run(cleaning(BurnedInAnnotationPolicy.Reject), write_dataset(drawn.dataset), rules=BAND)
    assert [region["Rule"] for region in regions] == ["band"]
    assert "BurnedInAnnotation" not in dcmread(BytesIO(output))


def test_warn_passes_pixels_through_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "decode_frames", None)  # must not be called
    data = burned_in_instance()
    output, warnings, regions = run(cleaning(BurnedInAnnotationPolicy.Warn), data, rules=BAND)
    result = dcmread(BytesIO(output))
    assert result.PixelData == dcmread(BytesIO(data)).PixelData
    assert result.BurnedInAnnotation == "YES"
    assert regions == []
    assert any("0028,0301" in warning and "Warn" in warning for warning in warnings)


def test_redact_turns_yes_into_no() -> None:
    output, warnings, regions = run(cleaning(), burned_in_instance(), rules=BAND, ocr=OcrMode.Off)
    result = dcmread(BytesIO(output))
    assert result.BurnedInAnnotation == "NO"
    assert regions and not warnings
    assert (result.pixel_array[:30] == 0).all()


def test_declared_but_nothing_found_stays_yes_with_a_warning() -> None:
    drawn = make_instance(words_per_frame=[[]], sop_class=CT_IMAGE, modality="CT", burned_in="YES")
    output, warnings, regions = run(cleaning(), write_dataset(drawn.dataset), rules=())
    assert dcmread(BytesIO(output)).BurnedInAnnotation == "YES"
    assert regions == []
    assert any("0028,0301" in warning and "left YES" in warning for warning in warnings)


def test_declared_with_no_rule_and_ocr_off_is_refused() -> None:
    drawn = make_instance(words_per_frame=[[]], sop_class=CT_IMAGE, modality="CT", burned_in="YES")
    with pytest.raises(AnonymizationError, match=r"0028,0301.*OCR is off"):
        run(cleaning(), write_dataset(drawn.dataset), rules=(), ocr=OcrMode.Off)


def palette_instance(words: list[tuple[int, int, str]]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A PALETTE COLOR image whose lookup table is an inverted grey ramp: index 255 shows black, so the image
    shows white words on the usual background although they are stored as low indices."""
    drawn = make_instance(words_per_frame=[words], sop_class=US_IMAGE, modality="US")
    dataset = drawn.dataset
    indices = 255 - drawn.pixels[0, :, :, 0]
    dataset.PhotometricInterpretation = "PALETTE COLOR"
    dataset.PixelData = indices.tobytes()
    ramp = np.arange(255, -1, -1, dtype="<u2") * 257
    for colour in ("Red", "Green", "Blue"):
        setattr(dataset, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(dataset, f"{colour}PaletteColorLookupTableData", ramp.tobytes())
    return write_dataset(dataset), indices, drawn.text[0]


def test_palette_colour_black_is_the_index_of_the_darkest_colour() -> None:
    data, indices, _ = palette_instance([])
    output, _, _ = run(cleaning(), data, rules=BAND, ocr=OcrMode.Off)
    result = dcmread(BytesIO(output))
    assert result.PhotometricInterpretation == "PALETTE COLOR"
    assert (result.pixel_array[:30] == 255).all()
    assert np.array_equal(result.pixel_array[30:], indices[30:])


def test_palette_colour_words_found_through_the_lookup_table() -> None:
    data, _, text = palette_instance([(20, 120, PATIENT_NAME)])
    output, _, regions = run(cleaning(), data, rules=(RedactionRule("read-everything", ocr=True),))
    after = dcmread(BytesIO(output)).pixel_array
    assert regions and {region["Source"] for region in regions} == {"ocr"}
    assert (after[text] == 255).all()


def test_one_bit_pixel_data_is_refused_by_name() -> None:
    drawn = make_instance(words_per_frame=[[]], sop_class=US_IMAGE, modality="US")
    dataset = drawn.dataset
    dataset.BitsAllocated = dataset.BitsStored = 1
    dataset.HighBit = 0
    dataset.PixelData = bytes(240 * 320 // 8)
    with pytest.raises(AnonymizationError, match="0028,0100"):
        run(cleaning(), write_dataset(dataset), rules=BAND)


def test_monochrome1_black_is_the_brightest_stored_value() -> None:
    drawn = make_instance(words_per_frame=[[]], sop_class=US_IMAGE, modality="US", bits=12)
    drawn.dataset.PhotometricInterpretation = "MONOCHROME1"
    output, _, _ = run(cleaning(), write_dataset(drawn.dataset), rules=BAND, ocr=OcrMode.Off)
    result = dcmread(BytesIO(output))
    assert (result.pixel_array[:30] == 4095).all()
    assert np.array_equal(result.pixel_array[30:], drawn.pixels[0, 30:, :, 0])


def test_signed_monochrome2_black_is_the_darkest_value_present() -> None:
    drawn = make_instance(words_per_frame=[[]], sop_class=US_IMAGE, modality="US", bits=12)
    dataset = drawn.dataset
    signed = drawn.pixels[0, :, :, 0].astype(np.int16) - 1024
    dataset.PixelRepresentation = 1
    dataset.PixelData = signed.tobytes()
    output, _, _ = run(cleaning(), write_dataset(dataset), rules=BAND, ocr=OcrMode.Off)
    result = dcmread(BytesIO(output))
    assert (result.pixel_array[:30] == signed.min()).all()
    assert np.array_equal(result.pixel_array[30:], signed[30:])


def test_policy_from_json_and_xml_profiles(tmp_path: Path) -> None:
    (tmp_path / "strict.json").write_text(
        json.dumps({"Options": ["CleanPixelData"], "BurnedInAnnotation": "Reject"}), encoding="utf-8"
    )
    (tmp_path / "lenient.xml").write_text(
        '<profile burned-in-annotation="Warn"><option>CleanPixelData</option></profile>', encoding="utf-8"
    )
    (tmp_path / "child.json").write_text(json.dumps({"Base": "strict"}), encoding="utf-8")
    strict = load_profile_file(tmp_path / "strict.json")
    assert strict.burned_in_annotation is BurnedInAnnotationPolicy.Reject
    assert strict.describe()["BurnedInAnnotation"] == "Reject"
    assert load_profile_file(tmp_path / "lenient.xml").burned_in_annotation is BurnedInAnnotationPolicy.Warn
    assert load_profile_file(tmp_path / "child.json").burned_in_annotation is BurnedInAnnotationPolicy.Reject
    # Options added later keep the policy.
    assert strict.with_options(["CleanDesc"]).burned_in_annotation is BurnedInAnnotationPolicy.Reject
    assert basic_profile().burned_in_annotation is BurnedInAnnotationPolicy.Redact
    assert "BurnedInAnnotation" not in basic_profile().describe()


def test_bad_policy_is_a_profile_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"BurnedInAnnotation": "Blur"}), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"bad.json: BurnedInAnnotation: unknown BurnedInAnnotation policy 'Blur'"):
        load_profile_file(path)


def test_option_code_and_name() -> None:
    assert Option.parse("CleanPixelData") is Option.CleanPixelData
    assert Option.CleanPixelData.code == ("113101", "Clean Pixel Data Option")


def test_cli_option_clean_pixel_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "us.dcm").write_bytes(burned_in_instance())
    drawn = make_instance(words_per_frame=[[]], sop_class=CT_IMAGE, modality="CT")
    (source / "ct.dcm").write_bytes(write_dataset(drawn.dataset))
    status = cli.main(
        ["anonymize", str(source), str(tmp_path / "out"), "--option", "CleanPixelData", "--dev-secret", "--json"]
    )
    assert status == 0, capsys.readouterr().err
    us = dcmread(tmp_path / "out" / "us.dcm")
    assert us.BurnedInAnnotation == "NO"
    assert (us.pixel_array[:19] == 0).all()  # the starter set's ultrasound band: top 8% of 240 rows
    ct = dcmread(tmp_path / "out" / "ct.dcm")
    assert ct.PixelData == drawn.dataset.PixelData
    assert "113101" in [item.CodeValue for item in ct.DeidentificationMethodCodeSequence]
