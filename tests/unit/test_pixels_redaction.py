"""Clean Pixel Data (PS3.15 E.3.1) on generated images with identifying words drawn into known places.

Each scenario anonymizes an instance under ``CleanPixelData``, writes it, reads it back and checks: every pixel a
word touched is black, every pixel outside the boxes the report lists is unchanged, Tesseract finds no word in the
output, and the Image Pixel module describes the new pixel data.
"""

from __future__ import annotations

import json
import logging
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytesseract
import pytest
from numpy.typing import NDArray
from PIL import Image
from pixel_images import (
    PATIENT_ID,
    PATIENT_NAME,
    SC_MULTIFRAME_TRUE_COLOR,
    STUDY_DATE,
    US_IMAGE,
    US_MULTIFRAME,
    WORDS,
    Drawn,
    make_instance,
)
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from orthanc_anonymizer.deid import pixels
from orthanc_anonymizer.deid.engine import AnonymizationReport, AnonymizationSettings, anonymize_bytes, write_dataset
from orthanc_anonymizer.deid.pixels import DecodedImage, PixelSettings, RedactionRule, codecs, ocr
from orthanc_anonymizer.deid.pixels.ocr import _ocr_picture
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher

SECRET = b"pixel test secret"


def settings(**pixel_settings: Any) -> AnonymizationSettings:
    return AnonymizationSettings(
        profile=basic_profile(["CleanPixelData"]),
        hasher=KeyedHasher(SECRET),
        pixels=PixelSettings(**pixel_settings),
    )


def anonymize(dataset: Dataset, anonymization: AnonymizationSettings) -> tuple[Dataset, AnonymizationReport]:
    output, report = anonymize_bytes(write_dataset(dataset), anonymization)
    return dcmread(BytesIO(output)), report


def frames_of(dataset: Dataset) -> NDArray[Any]:
    """Every frame as ``(frames, rows, columns, samples)``, colour as RGB."""
    array = dataset.pixel_array
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    return array.reshape(frames, int(dataset.Rows), int(dataset.Columns), int(dataset.SamplesPerPixel))


def source_frames(drawn: Drawn) -> NDArray[Any]:
    """The source's frames as a reader sees them (for JPEG: after its loss)."""
    return frames_of(dcmread(BytesIO(write_dataset(drawn.dataset))))


def redacted_mask(report: AnonymizationReport, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    mask = np.zeros(shape[:3], dtype=bool)
    for region in report.pixel_regions:
        left, top = int(region["Left"]), int(region["Top"])  # type: ignore[call-overload]
        right, bottom = left + int(region["Width"]), top + int(region["Height"])  # type: ignore[call-overload]
        frame = region["Frame"]
        if frame is None:
            mask[:, top:bottom, left:right] = True
        else:
            mask[int(frame) - 1, top:bottom, left:right] = True  # type: ignore[call-overload]
    return mask


def ocr_tokens(frames: NDArray[Any], photometric: str) -> set[str]:
    """What Tesseract reads in the frames, as the engine prepares them, in upper-case tokens (test only: the
    engine itself never keeps what it reads)."""
    image = DecodedImage(frames, photometric, 8, False, ExplicitVRLittleEndian)
    tokens: set[str] = set()
    for frame in frames:
        picture, factor = _ocr_picture(frame, image)
        enlarged = Image.fromarray(picture).resize((picture.shape[1] * factor, picture.shape[0] * factor))
        text = pytesseract.image_to_string(enlarged, config="--psm 11")
        tokens |= set(text.upper().replace("^", " ").split())
    return tokens


DRAWN_TOKENS = {part for word in WORDS for part in word.replace("^", " ").split()}


def check_redaction(drawn: Drawn, output: Dataset, report: AnonymizationReport) -> NDArray[np.bool_]:
    """The three promises: words black, the rest unchanged pixel for pixel, no word left for OCR."""
    before = source_frames(drawn)
    after = frames_of(output)
    assert after.shape == before.shape
    assert output.PhotometricInterpretation in ("MONOCHROME2", "RGB")
    mask = redacted_mask(report, after.shape)
    assert (after[drawn.text] == 0).all(), "a pixel of a drawn word is not black"
    assert (after[mask] == 0).all(), "a reported box is not black"
    assert np.array_equal(after[~mask], before[~mask]), "a pixel outside the reported boxes changed"
    # The boxes are about the words, not the whole image.
    assert mask.sum() < 0.25 * mask.size
    assert ocr_tokens(before, str(output.PhotometricInterpretation)) & DRAWN_TOKENS, "the source shows no word"
    assert not ocr_tokens(after, str(output.PhotometricInterpretation)) & DRAWN_TOKENS
    return mask


def check_report_has_no_text(report: AnonymizationReport, caplog: pytest.LogCaptureFixture) -> None:
    dumped = json.dumps(report.pixel_regions) + " ".join(report.warnings) + caplog.text
    for word in WORDS:
        for part in word.replace("^", " ").split():
            if part.isalpha():
                assert part not in dumped
    for region in report.pixel_regions:
        assert set(region) <= {"Frame", "Left", "Top", "Width", "Height", "Source", "Rule", "Confidence"}


def test_monochrome_secondary_capture_words_found_by_ocr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    drawn = make_instance(words_per_frame=[[(12, 8, PATIENT_NAME), (150, 200, STUDY_DATE), (20, 120, PATIENT_ID)]])
    output, report = anonymize(drawn.dataset, settings())
    check_redaction(drawn, output, report)
    assert {region["Source"] for region in report.pixel_regions} == {"ocr"}
    assert output.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    check_report_has_no_text(report, caplog)
    codes = [item.CodeValue for item in output.DeidentificationMethodCodeSequence]
    assert "113101" in codes
    assert "Clean Pixel Data Option" in [item.CodeMeaning for item in output.DeidentificationMethodCodeSequence]


def test_rgb_multiframe_every_frame_with_words_in_other_places() -> None:
    words = [
        [(10, 10, PATIENT_NAME)],
        [(160, 100, PATIENT_ID)],
        [(40, 200, STUDY_DATE)],
    ]
    drawn = make_instance(words_per_frame=words, color=True, sop_class=SC_MULTIFRAME_TRUE_COLOR)
    output, report = anonymize(drawn.dataset, settings())
    check_redaction(drawn, output, report)
    assert int(output.NumberOfFrames) == 3
    assert {region["Frame"] for region in report.pixel_regions} == {1, 2, 3}
    assert output.PlanarConfiguration == 0


def test_jpeg_baseline_ybr_ultrasound_multiframe_becomes_rgb_rle_and_stays_lossy() -> None:
    words = [[(10, 60, PATIENT_NAME), (170, 200, STUDY_DATE)], [(10, 60, PATIENT_NAME), (170, 200, STUDY_DATE)]]
    drawn = make_instance(
        words_per_frame=words,
        color=True,
        encoding="jpeg",
        sop_class=US_MULTIFRAME,
        modality="US",
        manufacturer="ACME Medical",
        burned_in="YES",
    )
    assert drawn.dataset.PhotometricInterpretation == "YBR_FULL_422"
    output, report = anonymize(drawn.dataset, settings())
    check_redaction(drawn, output, report)
    assert output.file_meta.TransferSyntaxUID == RLELossless
    assert output.PhotometricInterpretation == "RGB"
    assert output.LossyImageCompression == "01"
    assert output.LossyImageCompressionMethod == "ISO_10918_1"
    assert output.BurnedInAnnotation == "NO"
    # The starter set's ultrasound band: the top 8% of every frame, as a rule region.
    rule_regions = [region for region in report.pixel_regions if region["Source"] == "rule"]
    assert rule_regions == [
        {"Frame": None, "Left": 0, "Top": 0, "Width": 320, "Height": 19, "Source": "rule", "Rule": "us-top-banner"}
    ]
    changed = {change.tag for change in report.changes if change.rule == "CleanPixelData"}
    assert {"7FE0,0010", "0002,0010", "0028,0004", "0028,0301"} <= changed


def test_jpeg_monochrome_single_frame_explicit_output_on_request() -> None:
    drawn = make_instance(words_per_frame=[[(30, 100, PATIENT_ID)]], encoding="jpeg")
    output, report = anonymize(drawn.dataset, settings(compressed_output="ExplicitVRLittleEndian"))
    check_redaction(drawn, output, report)
    assert output.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert output.LossyImageCompression == "01"


def test_rle_sixteen_bit_multiframe_keeps_bits_and_rle() -> None:
    drawn = make_instance(words_per_frame=[[(10, 20, PATIENT_NAME)], [(100, 150, PATIENT_ID)]], bits=12, encoding="rle")
    output, report = anonymize(drawn.dataset, settings())
    check_redaction(drawn, output, report)
    assert output.file_meta.TransferSyntaxUID == RLELossless
    assert (output.BitsAllocated, output.BitsStored, output.HighBit) == (16, 12, 11)
    assert "LossyImageCompression" not in output


def test_ultrasound_layout_rule_by_manufacturer_model_and_size_without_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = pixels.parse_redaction_rules(
        json.dumps(
            [
                {
                    "Name": "acme-banner",
                    "Match": {"Modality": "US", "Manufacturer": "acme*", "Rows": 240, "Columns": [320, 640]},
                    "Regions": [{"Left": 0, "Top": 0, "Width": "100%", "Height": 40}],
                },
                {
                    "Name": "other-vendor",
                    "Match": {"Manufacturer": "Other*"},
                    "Regions": [{"Left": 0, "Top": 0, "Width": 5, "Height": 5}],
                },
            ]
        ),
        "test rules",
    )

    def no_ocr(*_: object) -> None:
        raise AssertionError("OCR ran although the matching rule gives a region and does not ask for OCR")

    monkeypatch.setattr(ocr, "find_text_boxes", no_ocr)
    drawn = make_instance(
        words_per_frame=[[(10, 10, PATIENT_NAME)]], sop_class=US_IMAGE, modality="US", manufacturer="ACME Medical"
    )
    output, report = anonymize(drawn.dataset, settings(rules=rule))
    after, before = frames_of(output), source_frames(drawn)
    assert (after[:, :40] == 0).all()
    assert np.array_equal(after[:, 40:], before[:, 40:])
    assert report.pixel_regions == [
        {"Frame": None, "Left": 0, "Top": 0, "Width": 320, "Height": 40, "Source": "rule", "Rule": "acme-banner"}
    ]


def test_rule_and_ocr_together_when_asked() -> None:
    rules = (
        RedactionRule(
            "band",
            (pixels.Criterion("Modality", 0x00080060, ("US",)),),
            (pixels.Region(*map(pixels.Extent, (0, 0, 320, 30))),),
        ),
    )
    drawn = make_instance(
        words_per_frame=[[(10, 5, PATIENT_NAME), (100, 180, STUDY_DATE)]], sop_class=US_IMAGE, modality="US"
    )
    output, report = anonymize(drawn.dataset, settings(rules=rules, ocr=pixels.OcrMode.Always))
    check_redaction(drawn, output, report)
    assert {region["Source"] for region in report.pixel_regions} == {"rule", "ocr"}


def test_instance_needing_nothing_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(*_: object) -> None:
        raise AssertionError("decoded an instance that needs no pixel work")

    monkeypatch.setattr(codecs, "decode_frames", no_decode)
    drawn = make_instance(
        words_per_frame=[[(10, 10, PATIENT_NAME)]], sop_class="1.2.840.10008.5.1.4.1.1.2", modality="CT"
    )
    original = drawn.dataset.PixelData
    output, report = anonymize(drawn.dataset, settings())
    assert output.PixelData == original
    assert report.pixel_regions == []
    assert not [change for change in report.changes if change.rule == "CleanPixelData"]
    # The option is still declared: nothing in this instance needed cleaning.
    assert "113101" in [item.CodeValue for item in output.DeidentificationMethodCodeSequence]


def test_without_the_option_pixels_pass_through_even_with_burned_in_annotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "decode_frames", None)
    drawn = make_instance(words_per_frame=[[(10, 10, PATIENT_NAME)]], burned_in="YES", modality="US")
    plain = AnonymizationSettings(profile=basic_profile(), hasher=KeyedHasher(SECRET))
    output, _ = anonymize(drawn.dataset, plain)
    assert output.PixelData == drawn.dataset.PixelData
    assert output.BurnedInAnnotation == "YES"


CORNER = (RedactionRule("corner", (), (pixels.Region(*map(pixels.Extent, (0, 0, 10, 10))),)),)


@pytest.mark.parametrize(
    ("name", "syntax", "lossy"),
    [
        ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2", False),
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2", False),
        ("SC_rgb_rle.dcm", RLELossless, False),
        ("JPEG2000.dcm", RLELossless, True),
        ("SC_rgb_jpeg_gdcm.dcm", RLELossless, False),
        ("SC_jpeg_no_color_transform.dcm", RLELossless, True),
        ("JPEGLSNearLossless_16.dcm", RLELossless, True),
    ],
)
def test_pydicom_files_in_each_transfer_syntax(name: str, syntax: str, lossy: bool) -> None:
    """Real files: the corner is black, every other pixel is what pydicom decodes from the source."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    assert path is not None
    data = Path(path).read_bytes()
    source = dcmread(BytesIO(data))
    output, report = anonymize_bytes(data, settings(rules=CORNER, ocr=pixels.OcrMode.Off))
    result = dcmread(BytesIO(output))
    assert result.file_meta.TransferSyntaxUID == syntax
    after, before = frames_of(result), frames_of(source)
    black = after[:, :10, :10]
    assert (black == black.min()).all()
    assert np.array_equal(after[:, 10:], before[:, 10:]) and np.array_equal(after[:, :, 10:], before[:, :, 10:])
    assert (result.get("LossyImageCompression") == "01") is lossy
    assert report.pixel_regions == [
        {"Frame": None, "Left": 0, "Top": 0, "Width": 10, "Height": 10, "Source": "rule", "Rule": "corner"}
    ]


def test_image_without_text_keeps_its_bytes_and_encoding() -> None:
    drawn = make_instance(words_per_frame=[[], []], color=True, encoding="jpeg", sop_class=SC_MULTIFRAME_TRUE_COLOR)
    output, report = anonymize(drawn.dataset, settings())
    assert report.pixel_regions == []
    assert output.file_meta.TransferSyntaxUID == drawn.dataset.file_meta.TransferSyntaxUID
    assert output.PixelData == drawn.dataset.PixelData
    assert output.PhotometricInterpretation == "YBR_FULL_422"
