"""What Clean Pixel Data does to one instance: the settings beside the profile, the plan decided from a few attributes
without decoding (:func:`plan_pixel_work`), and the cleaning itself (:func:`clean_pixel_data`), which decodes through
:mod:`.codecs` and finds text through :mod:`.ocr` only for the instances that need it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.pixels import codecs, ocr
from orthanc_anonymizer.deid.pixels.codecs import BURNED_IN_ANNOTATION, OUTPUT_SYNTAXES, PIXEL_DATA
from orthanc_anonymizer.deid.pixels.rules import RedactionRule, Region, attribute_text, shipped_redaction_rules
from orthanc_anonymizer.deid.profiles import BurnedInAnnotationPolicy, Profile
from orthanc_anonymizer.errors import AnonymizationError, ProfileError


class OcrMode(StrEnum):
    """Where text detection (Tesseract OCR) runs, among the instances that need pixel work."""

    Off = "Off"
    """Never: rule regions only. An instance declaring burned-in annotation that no region covers is refused."""
    Unmatched = "Unmatched"
    """Where no matching rule gives a region, and where a matching rule asks for it (``"Ocr": true``)."""
    Always = "Always"
    """On every instance that needs pixel work, in addition to the rules' regions."""


@dataclass(frozen=True)
class PixelSettings:
    """How Clean Pixel Data works, beside the profile (which holds the Burned In Annotation policy). Picklable."""

    rules: tuple[RedactionRule, ...] | None = None
    """The redaction rules; ``None`` for the starter set shipped in ``profiles/pixel-redaction/``."""
    ocr: OcrMode = OcrMode.Unmatched
    ocr_language: str = "eng"
    ocr_min_confidence: float = 0.0
    """Tesseract word confidence (0 to 100) from which a word's box is blacked out. 0: every word with a letter or
    digit, since Tesseract gives real names written with DICOM's ``^`` a confidence near 0; raise it to black out
    less of the image at the risk of missing words."""
    ocr_margin: int = 2
    """Least pixels added around each word's glyphs: the margin is a fifth of their height, at least this."""
    compressed_output: str = "RLELossless"
    """Transfer syntax for an instance whose source was compressed: ``RLELossless`` or ``ExplicitVRLittleEndian``."""

    def __post_init__(self) -> None:
        if self.compressed_output not in OUTPUT_SYNTAXES:
            known = ", ".join(OUTPUT_SYNTAXES)
            raise ProfileError(f"unknown output transfer syntax {self.compressed_output!r}; known: {known}")

    def redaction_rules(self) -> tuple[RedactionRule, ...]:
        return shipped_redaction_rules() if self.rules is None else self.rules


@dataclass(frozen=True)
class PixelPlan:
    """What one instance needs, decided from its attributes alone."""

    rules: tuple[RedactionRule, ...]
    """The rules that match it."""
    ocr: bool
    burned_in: bool
    """Burned In Annotation was ``YES``."""

    @property
    def regions(self) -> tuple[tuple[RedactionRule, Region], ...]:
        return tuple((rule, region) for rule in self.rules for region in rule.regions)


@dataclass
class PixelOutcome:
    """What Clean Pixel Data did to one instance: boxes, attributes changed and warnings, never text."""

    regions: list[dict[str, object]] = field(default_factory=list)
    """Each box blacked out: ``{"Frame": n or None (every frame), "Left", "Top", "Width", "Height", "Source":
    "rule" or "ocr", "Rule": name (rule boxes), "Confidence": 0..100 (OCR boxes)}``. Frames count from 1."""
    changed_tags: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_pixel_work(dataset: Dataset, profile: Profile, settings: PixelSettings) -> tuple[PixelPlan | None, str]:
    """Decide, without decoding, whether ``dataset`` needs pixel work; ``(None, warning or "")`` when not.

    Raises :class:`AnonymizationError` when the instance declares burned-in annotation and the profile's policy is
    ``Reject``, or when it would need cleaning and nothing could clean it (no rule region and OCR off).
    """
    if PIXEL_DATA not in dataset:
        return None, ""
    burned_in = attribute_text(dataset, BURNED_IN_ANNOTATION).upper() == "YES"
    if burned_in:
        policy = profile.burned_in_annotation
        if policy is BurnedInAnnotationPolicy.Reject:
            raise AnonymizationError(
                "0028,0301 BurnedInAnnotation is YES and the profile's BurnedInAnnotation policy is Reject: "
                "instance not anonymized"
            )
        if policy is BurnedInAnnotationPolicy.Warn:
            return None, "0028,0301: BurnedInAnnotation YES passed through with its pixel data unchanged (policy Warn)"
    matched = tuple(rule for rule in settings.redaction_rules() if rule.matches(dataset))
    if not matched and not burned_in:
        return None, ""
    has_regions = any(rule.regions for rule in matched)
    if settings.ocr is OcrMode.Always:
        ocr = True
    elif settings.ocr is OcrMode.Unmatched:
        ocr = not has_regions or any(rule.ocr for rule in matched)
    else:
        ocr = False
    if not ocr and not has_regions:
        if burned_in:
            raise AnonymizationError(
                "0028,0301 BurnedInAnnotation is YES, no pixel redaction rule gives a region for this instance and "
                "OCR is off: the burned-in text cannot be cleaned"
            )
        return None, ""
    return PixelPlan(matched, ocr, burned_in), ""


def clean_pixel_data(dataset: Dataset, profile: Profile, settings: PixelSettings) -> PixelOutcome:
    """PS3.15 E.3.1 Clean Pixel Data for one instance, in place; see the module docstring for the steps.

    Instances that need no pixel work are left untouched and not decoded. Raises :class:`AnonymizationError`
    (naming tags and transfer syntaxes, never values) when the instance must not or cannot be cleaned.
    """
    outcome = PixelOutcome()
    plan, warning = plan_pixel_work(dataset, profile, settings)
    if warning:
        outcome.warnings.append(warning)
    if plan is None:
        return outcome
    image = codecs.decode_frames(dataset)
    frames = image.frames
    rows, columns = frames.shape[1], frames.shape[2]
    black = codecs.black_value(image, dataset)
    # OCR first, on the frames as they came: a large black rule region would skew Tesseract's global threshold.
    found = (
        [ocr.find_text_boxes(frames[index], image, settings) for index in range(frames.shape[0])] if plan.ocr else []
    )
    done: set[tuple[int, int, int, int]] = set()
    for rule, region in plan.regions:
        left, top, right, bottom = box = region.box(rows, columns)
        if right <= left or bottom <= top or box in done:
            continue
        done.add(box)
        frames[:, top:bottom, left:right] = black
        outcome.regions.append(_region_record(None, left, top, right, bottom, "rule", rule=rule.name))
    for index, boxes in enumerate(found):
        for left, top, right, bottom, confidence in boxes:
            frames[index, top:bottom, left:right] = black
            outcome.regions.append(_region_record(index + 1, left, top, right, bottom, "ocr", confidence=confidence))
    if not outcome.regions:
        # Nothing to black out: the pixel data keeps its bytes and its encoding.
        if plan.burned_in:
            outcome.warnings.append(
                "0028,0301: BurnedInAnnotation YES but no rule region applied and OCR found no text; left YES"
            )
        return outcome
    outcome.changed_tags.extend(codecs.encode_frames(dataset, image, settings))
    outcome.changed_tags.append(PIXEL_DATA)
    if plan.burned_in:
        dataset.BurnedInAnnotation = "NO"
        outcome.changed_tags.append(BURNED_IN_ANNOTATION)
    return outcome


def _region_record(
    frame: int | None, left: int, top: int, right: int, bottom: int, source: str, **extra: object
) -> dict[str, object]:
    record: dict[str, object] = {
        "Frame": frame,
        "Left": left,
        "Top": top,
        "Width": right - left,
        "Height": bottom - top,
        "Source": source,
    }
    record.update({key.capitalize(): value for key, value in extra.items()})
    return record
