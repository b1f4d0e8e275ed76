"""Clean Pixel Data (PS3.15 E.3.1): black out identifying text burned into the pixel data.

PS3.15 E.3.1 asks that information burned into the Pixel Data which the profile removes from the attributes
(names, IDs, dates, institution) be removed from the pixels too, and that the attributes describing burned-in
information be set accordingly: Burned In Annotation (0028,0301) ``YES`` becomes ``NO`` once cleaned.

How an instance is handled, in order:

1. :func:`plan_pixel_work` looks at a few attributes only (no decoding): Pixel Data present, Burned In
   Annotation, and the redaction rules (:class:`RedactionRule`, data files in ``profiles/pixel-redaction/``) that
   match the instance's Modality, Manufacturer, ManufacturerModelName, Rows, Columns, SOPClassUID and so on. An
   instance that no rule matches and that does not declare burned-in annotation needs nothing: it is not decoded,
   and costs what it cost before.
2. The profile's Burned In Annotation policy (:class:`~orthanc_anonymizer.deid.profiles.BurnedInAnnotationPolicy`)
   decides what a declared ``YES`` means: ``Redact`` (clean it), ``Reject`` (the instance is not anonymized:
   :class:`~orthanc_anonymizer.errors.AnonymizationError`) or ``Warn`` (pixels pass through untouched, a warning).
3. Every frame is decoded with pydicom's pixel back ends (compressed transfer syntaxes through pylibjpeg and its
   plugins, or pyjpegls), colour made RGB; the rules' regions are blacked out, and where the OCR mode says so
   (:class:`OcrMode`) Tesseract finds words and their boxes are blacked out too. Only boxes are kept, never text.
4. The frames are written back losslessly: a compressed source as RLE Lossless (or Explicit VR Little Endian),
   an uncompressed one in its own transfer syntax; the Image Pixel module follows (Photometric
   Interpretation, Planar Configuration), and Lossy Image Compression stays ``01`` for a lossy source.

The optional back ends (numpy, the codecs, pytesseract and Pillow) are imported where they are used, so importing
this module costs nothing and an engine without ``CleanPixelData`` never touches them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import translate
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless

from orthanc_anonymizer.deid.profile_files import CHECKOUT_PROFILES_DIRECTORY, SHIPPED_DIRECTORY
from orthanc_anonymizer.deid.profiles import BurnedInAnnotationPolicy, Profile
from orthanc_anonymizer.errors import AnonymizationError, ProfileError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

SHIPPED_RULES_DIRECTORY = SHIPPED_DIRECTORY / "pixel-redaction"
"""The starter rules shipped with the package (``orthanc_anonymizer/profiles/pixel-redaction/``)."""
SITE_RULES_DIRECTORY = CHECKOUT_PROFILES_DIRECTORY / "pixel-redaction"
"""A site's own rules, in the checkout's ``profiles/pixel-redaction/``: used after the starter rules."""

_PIXEL_DATA = 0x7FE00010
_BURNED_IN_ANNOTATION = 0x00280301
_LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 (may be lossy; taken as lossy unless the instance says 00)
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 (may be lossy)
        "1.2.840.10008.1.2.4.203",  # HTJ2K (may be lossy)
    }
)
_LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.93": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
}
_OUTPUT_SYNTAXES = {"RLELossless": RLELossless, "ExplicitVRLittleEndian": ExplicitVRLittleEndian}
_RULE_KEYS = {"Name", "Description", "Match", "Regions", "Ocr"}
_REGION_KEYS = {"Left", "Top", "Width", "Height"}
_FILE_KEYS = {"Description", "Rules"}


class OcrMode(StrEnum):
    """Where text detection (Tesseract OCR) runs, among the instances that need pixel work."""

    Off = "Off"
    """Never: rule regions only. An instance declaring burned-in annotation that no region covers is refused."""
    Unmatched = "Unmatched"
    """Where no matching rule gives a region, and where a matching rule asks for it (``"Ocr": true``)."""
    Always = "Always"
    """On every instance that needs pixel work, in addition to the rules' regions."""


# --- redaction rules as data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extent:
    """A coordinate or size: pixels, or a percentage of the image's width or height."""

    value: float
    percent: bool = False

    def pixels(self, size: int) -> int:
        return round(self.value * size / 100) if self.percent else int(self.value)

    @classmethod
    def parse(cls, value: object, where: str) -> Extent:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ProfileError(f'{where}: expected pixels (a whole number) or a percentage ("10%"), not {value!r}')
        if isinstance(value, int):
            if value < 0:
                raise ProfileError(f"{where}: negative pixels {value}")
            return cls(value)
        text = value.strip()
        if not text.endswith("%"):
            raise ProfileError(f'{where}: expected pixels (a whole number) or a percentage ("10%"), not {value!r}')
        try:
            percent = float(text[:-1])
        except ValueError:
            raise ProfileError(f"{where}: bad percentage {value!r}") from None
        if not 0 <= percent <= 100:
            raise ProfileError(f"{where}: percentage {value!r} outside 0% to 100%")
        return cls(percent, True)


@dataclass(frozen=True)
class Region:
    """A rectangle to black out: left and width against Columns, top and height against Rows."""

    left: Extent
    top: Extent
    width: Extent
    height: Extent

    def box(self, rows: int, columns: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in pixels, clipped to the image (right and bottom exclusive)."""
        left = min(self.left.pixels(columns), columns)
        top = min(self.top.pixels(rows), rows)
        return left, top, min(left + self.width.pixels(columns), columns), min(top + self.height.pixels(rows), rows)


@dataclass(frozen=True)
class Criterion:
    """One attribute condition: the attribute's value matches one of ``patterns`` (``*`` and ``?`` wildcards,
    case-insensitive; a multi-valued attribute is matched as its values joined by ``\\``; absent is empty)."""

    keyword: str
    tag: int
    patterns: tuple[str, ...]

    def matches(self, dataset: Dataset) -> bool:
        text = _attribute_text(dataset, self.tag)
        return any(_pattern(pattern).fullmatch(text) for pattern in self.patterns)


@dataclass(frozen=True)
class RedactionRule:
    """Regions to black out, and whether to look for text, for the instances whose attributes match.

    In the spirit of RSNA CTP's DicomPixelAnonymizer scripts: a condition on attributes, then rectangles. Every
    criterion must hold (an empty ``match`` selects every image).
    """

    name: str
    match: tuple[Criterion, ...] = ()
    regions: tuple[Region, ...] = ()
    ocr: bool = False
    description: str = ""
    source: str = ""

    def matches(self, dataset: Dataset) -> bool:
        return all(criterion.matches(dataset) for criterion in self.match)


def parse_redaction_rules(text: str, source: str) -> tuple[RedactionRule, ...]:
    """The rules of one JSON rule file (see ``profiles/pixel-redaction/README.md``).

    ``{"Description": "...", "Rules": [...]}`` or a bare list of rules. Raises :class:`ProfileError` naming
    ``source``, the rule (``Rules[i]``, from 0) and the bad part.
    """
    try:
        value = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as error:
        raise ProfileError(f"{source}, line {error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(value, dict):
        _check_keys(value, _FILE_KEYS, source, "the rule file")
        value = value.get("Rules", [])
    if not isinstance(value, list):
        raise ProfileError(f"{source}: expected a list of rules or an object with Rules")
    return tuple(_parse_rule(item, f"{source}: Rules[{index}]", source) for index, item in enumerate(value))


def load_redaction_rules(directory: Path) -> tuple[RedactionRule, ...]:
    """Every rule of every ``*.json`` file in ``directory``, files in name order; :class:`ProfileError` else."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ProfileError(f"pixel redaction rules directory {directory} does not exist or is not a directory")
    rules: list[RedactionRule] = []
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(f"{path}: cannot read ({type(error).__name__})") from None
        rules.extend(parse_redaction_rules(text, str(path)))
    return tuple(rules)


@lru_cache(maxsize=1)
def shipped_redaction_rules() -> tuple[RedactionRule, ...]:
    """The starter rules, then the site's own in the checkout's ``profiles/pixel-redaction/`` if any; read once."""
    site = load_redaction_rules(SITE_RULES_DIRECTORY) if SITE_RULES_DIRECTORY.is_dir() else ()
    return load_redaction_rules(SHIPPED_RULES_DIRECTORY) + site


def _check_keys(value: Mapping[str, object], known: set[str], where: str, what: str) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r} in {what}; known keys: {', '.join(sorted(known))}")


def _parse_rule(item: object, where: str, source: str) -> RedactionRule:
    if not isinstance(item, dict):
        raise ProfileError(f"{where}: expected a rule object")
    _check_keys(item, _RULE_KEYS, where, "a rule")
    name = item.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise ProfileError(f"{where}: a rule needs a Name")
    description = item.get("Description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{where}: Description must be a string")
    ocr = item.get("Ocr", False)
    if not isinstance(ocr, bool):
        raise ProfileError(f"{where}: Ocr must be true or false")
    match = item.get("Match", {})
    if not isinstance(match, dict):
        raise ProfileError(f'{where}: Match must be an object {{"Keyword": pattern}}')
    criteria = tuple(_parse_criterion(keyword, value, f"{where}: Match.{keyword}") for keyword, value in match.items())
    regions = item.get("Regions", [])
    if not isinstance(regions, list):
        raise ProfileError(f"{where}: Regions must be a list of rectangles")
    parsed_regions = tuple(_parse_region(region, f"{where}: Regions[{index}]") for index, region in enumerate(regions))
    if not parsed_regions and not ocr:
        raise ProfileError(f"{where}: a rule needs Regions or Ocr true, else it does nothing")
    return RedactionRule(name.strip(), criteria, parsed_regions, ocr, description, source)


def _parse_criterion(keyword: str, value: object, where: str) -> Criterion:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ProfileError(f"{where}: unknown attribute keyword {keyword!r}")
    values = value if isinstance(value, list) else [value]
    patterns = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ProfileError(f"{where}: expected a text pattern, a number or a list of them, not {item!r}")
        patterns.append(str(item))
    if not patterns:
        raise ProfileError(f"{where}: an empty list matches nothing")
    return Criterion(keyword, tag, tuple(patterns))


def _parse_region(value: object, where: str) -> Region:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected {{Left, Top, Width, Height}}")
    _check_keys(value, _REGION_KEYS, where, "a region")
    missing = [key for key in ("Left", "Top", "Width", "Height") if key not in value]
    if missing:
        raise ProfileError(f"{where}: missing {missing[0]}")
    return Region(*(Extent.parse(value[key], f"{where}.{key}") for key in ("Left", "Top", "Width", "Height")))


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(translate(text.strip()), re.IGNORECASE | re.DOTALL)


def _attribute_text(dataset: Dataset, tag: int) -> str:
    element = dataset.get(tag)
    if element is None or element.value is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Iterable):
        return "\\".join(str(item).strip() for item in value)
    return str(value).strip()


# --- settings, plan, outcome ------------------------------------------------------------------------------------


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
        if self.compressed_output not in _OUTPUT_SYNTAXES:
            known = ", ".join(_OUTPUT_SYNTAXES)
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
    if _PIXEL_DATA not in dataset:
        return None, ""
    burned_in = _attribute_text(dataset, _BURNED_IN_ANNOTATION).upper() == "YES"
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
    image = decode_frames(dataset)
    frames = image.frames
    rows, columns = frames.shape[1], frames.shape[2]
    black = _black_value(image, dataset)
    # OCR first, on the frames as they came: a large black rule region would skew Tesseract's global threshold.
    found = [find_text_boxes(frames[index], image, settings) for index in range(frames.shape[0])] if plan.ocr else []
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
    outcome.changed_tags.extend(encode_frames(dataset, image, settings))
    outcome.changed_tags.append(_PIXEL_DATA)
    if plan.burned_in:
        dataset.BurnedInAnnotation = "NO"
        outcome.changed_tags.append(_BURNED_IN_ANNOTATION)
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


# --- decoding, the black value, re-encoding ---------------------------------------------------------------------


@dataclass
class DecodedImage:
    """Every frame as ``(frames, rows, columns, samples)``, and how the decoder left them."""

    frames: NDArray[Any]
    photometric: str
    bits_stored: int
    signed: bool
    source_syntax: UID
    palette: NDArray[Any] | None = None
    """PALETTE COLOR: the colour (red, green, blue) each stored index shows, for the black index and for OCR."""


def decode_frames(dataset: Dataset) -> DecodedImage:
    """Decode every frame of ``dataset``'s Pixel Data with pydicom's back ends; colour (YBR) comes back RGB.

    Raises :class:`AnonymizationError` naming the transfer syntax when no installed back end can decode it.
    """
    import numpy as np
    from pydicom.pixels.decoders.base import get_decoder

    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        raise AnonymizationError("0002,0010 TransferSyntaxUID missing: the pixel data cannot be decoded")
    syntax = UID(str(syntax))
    if int(dataset.get("BitsAllocated", 0) or 0) not in (8, 16, 32):
        raise AnonymizationError("0028,0100 BitsAllocated: Clean Pixel Data handles 8, 16 and 32 bits")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise AnonymizationError(f"7FE0,0010: no pixel decoder for transfer syntax {syntax} ({syntax.name})") from None
    if not decoder.is_available:
        raise AnonymizationError(
            f"7FE0,0010: the decoders for transfer syntax {syntax} ({syntax.name}) are not installed"
        )
    try:
        options: dict[str, Any] = {"as_rgb": True}  # YBR (JPEG's colour space) comes back as RGB
        array, info = decoder.as_array(dataset, **options)
    except Exception as error:
        raise AnonymizationError(
            f"7FE0,0010: pixel data could not be decoded from {syntax.name} ({type(error).__name__})"
        ) from None
    photometric = str(info["photometric_interpretation"])
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR"):
        raise AnonymizationError(f"0028,0004: Clean Pixel Data does not handle PhotometricInterpretation {photometric}")
    samples = int(info["samples_per_pixel"])
    count = int(info["number_of_frames"])
    frames = np.array(array, copy=True).reshape(count, int(info["rows"]), int(info["columns"]), samples)
    image = DecodedImage(frames, photometric, int(info["bits_stored"]), int(info["pixel_representation"]) == 1, syntax)
    if photometric == "PALETTE COLOR":
        image.palette = _palette_colours(dataset, image)
    return image


def _palette_colours(dataset: Dataset, image: DecodedImage) -> NDArray[Any]:
    """The colour of every index the stored bits can hold, from the instance's Palette Color Lookup Table."""
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut

    if image.signed or image.bits_stored > 16:
        raise AnonymizationError("0028,0103: Clean Pixel Data handles unsigned palette indices of 16 bits or fewer")
    indices = np.arange(1 << image.bits_stored, dtype=np.uint8 if image.bits_stored <= 8 else np.uint16)
    try:
        colours: NDArray[Any] = apply_color_lut(indices, dataset)
    except Exception as error:
        raise AnonymizationError(f"0028,1201: palette lookup table unusable ({type(error).__name__})") from None
    return colours[..., :3]


def _black_value(image: DecodedImage, dataset: Dataset) -> int:
    """The stored value that displays black: 0 for RGB and unsigned MONOCHROME2, all bits set for unsigned
    MONOCHROME1; for signed data the image's own darkest value (an extreme of the range would be read as a real
    measurement, e.g. Hounsfield units far off the scale); for PALETTE COLOR the index of the darkest colour."""
    frames = image.frames
    if image.palette is not None:
        return int(image.palette.astype("int64").sum(axis=-1).argmin())
    if image.photometric == "MONOCHROME1":
        return int(frames.max()) if image.signed else (1 << image.bits_stored) - 1
    if image.photometric == "MONOCHROME2" and image.signed:
        return int(frames.min())
    return 0


def encode_frames(dataset: Dataset, image: DecodedImage, settings: PixelSettings) -> list[int]:
    """Write ``image`` back into ``dataset`` losslessly; the tags of the attributes changed besides Pixel Data.

    A compressed source becomes ``settings.compressed_output`` (RLE Lossless by default); an uncompressed source
    keeps its transfer syntax.
    """
    import numpy as np

    changed: list[int] = []
    source = image.source_syntax
    # An uncompressed source keeps its transfer syntax (big endian included: pydicom does not convert a whole
    # dataset between byte orders, and the other OB/OW values would need it too).
    target = _OUTPUT_SYNTAXES[settings.compressed_output] if source.is_compressed else source
    frames = image.frames
    samples = frames.shape[3]
    for keyword, tag, value in (
        ("PhotometricInterpretation", 0x00280004, image.photometric),
        ("SamplesPerPixel", 0x00280002, samples),
    ):
        if dataset.get(keyword) != value:
            setattr(dataset, keyword, value)
            changed.append(tag)
    if samples > 1 and dataset.get("PlanarConfiguration") != 0:
        dataset.PlanarConfiguration = 0
        changed.append(0x00280006)
    for tag in (0x7FE00001, 0x7FE00002):  # extended offset tables describe the old fragments
        if tag in dataset:
            del dataset[tag]
            changed.append(tag)
    shaped = frames[..., 0] if samples == 1 else frames
    if frames.shape[0] == 1:
        shaped = shaped[0]
    ordered = shaped.astype(shaped.dtype.newbyteorder("<" if target.is_little_endian else ">"), copy=False)
    if target == RLELossless:
        from pydicom.pixels.utils import compress

        try:
            compress(dataset, RLELossless, np.ascontiguousarray(ordered), generate_instance_uid=False)
        except Exception as error:
            raise AnonymizationError(f"7FE0,0010: RLE Lossless encoding failed ({type(error).__name__})") from None
    else:
        data = np.ascontiguousarray(ordered).tobytes()
        dataset.PixelData = data + b"\x00" if len(data) % 2 else data
        element = dataset[_PIXEL_DATA]
        element.VR = "OB" if int(dataset.BitsAllocated) <= 8 else "OW"
        element.is_undefined_length = False
        dataset.file_meta.TransferSyntaxUID = target
    if target != source:
        changed.append(0x00020010)
    if str(source) in _LOSSY_SYNTAXES and _attribute_text(dataset, 0x00282110) != "00":
        # PS3.3 C.7.6.1.1.5: once lossy, always lossy; decompressing does not undo it.
        if _attribute_text(dataset, 0x00282110) != "01":
            dataset.LossyImageCompression = "01"
            changed.append(0x00282110)
        if "LossyImageCompressionMethod" not in dataset:
            dataset.LossyImageCompressionMethod = _LOSSY_METHOD[str(source)]
            changed.append(0x00282114)
    dataset._pixel_array = None
    dataset._pixel_id = {}
    return changed


# --- text detection ---------------------------------------------------------------------------------------------


def _ocr_picture(frame: NDArray[Any], image: DecodedImage) -> tuple[NDArray[np.uint8], int]:
    """An 8-bit grey picture of one frame for Tesseract, enlarged for small images; and the enlargement."""
    import numpy as np

    values = frame.astype(np.float64) if image.palette is None else image.palette[frame[..., 0]].astype(np.float64)
    grey = values.mean(axis=2) if values.shape[2] > 1 else values[..., 0]
    # From darkest to brightest: burned-in text is usually the brightest (or darkest) thing in the image, and
    # clipping at percentiles would make it look like the background.
    low, high = float(grey.min()), float(grey.max())
    scaled = (grey - low) * (255.0 / (high - low)) if high > low else np.zeros_like(grey)
    if image.photometric == "MONOCHROME1":
        scaled = 255.0 - scaled
    picture = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    # Tesseract reads words best with letters 20 or more pixels high; burned-in text on small images is smaller.
    factor = 2 if max(picture.shape) <= 1024 else 1
    return picture, factor


def find_text_boxes(
    frame: NDArray[Any], image: DecodedImage, settings: PixelSettings
) -> list[tuple[int, int, int, int, int]]:
    """Word boxes ``(left, top, right, bottom, confidence)`` found by Tesseract in one frame, margins added.

    Two passes: Tesseract reads the frame as sparse text, the words that look like text (:func:`_word_box`) are
    kept; then it reads the frame again, with those boxes black, as a page, and keeps what it finds there too (a
    line beside a large textured area, a word beside another, glyphs left out of a word: each mode reads some
    that the other misses). Boxes never grow to meet each other. The words themselves are dropped here and never leave this function. Raises
    :class:`AnonymizationError` when Tesseract is not installed (the instance would otherwise leave uncleaned).
    """
    picture, factor = _ocr_picture(frame, image)
    boxes = _text_boxes(picture, factor, settings, _SPARSE_TEXT, confirming=False)
    redacted = picture.copy()
    for left, top, right, bottom, _ in boxes:
        redacted[top:bottom, left:right] = 0
    seen = {box[:4] for box in boxes}
    boxes.extend(box for box in _text_boxes(redacted, factor, settings, _PAGE, confirming=True) if box[:4] not in seen)
    return boxes


_SPARSE_TEXT = "--psm 11"
"""Tesseract's first pass: words scattered anywhere, in any order (burned-in text is rarely a page)."""
_PAGE = "--psm 3"
"""The second pass, on the frame with the first pass's words black: Tesseract's page layout, which reads a line
of text beside a large textured area (a cine's label bar) where the sparse mode sees none."""


def _tesseract_words(
    picture: NDArray[np.uint8], factor: int, settings: PixelSettings, mode: str
) -> dict[str, list[Any]]:
    """Tesseract's words of one picture (``image_to_data`` as lists: text, conf, left, top, width, height)."""
    try:
        import pytesseract
        from PIL import Image
    except ImportError as error:
        raise AnonymizationError(f"OCR needed for 7FE0,0010 but {error.name} is not installed") from None
    # Tesseract's own OpenMP threads cost more than they give when frames and instances already run side by side
    # (measured here: 3 times slower on 2 cores); pytesseract hands this environment to the tesseract process.
    # A site that wants them sets OMP_THREAD_LIMIT itself.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    rows, columns = picture.shape
    source = Image.fromarray(picture)
    if factor > 1:
        source = source.resize((columns * factor, rows * factor), Image.Resampling.LANCZOS)
    try:
        data: dict[str, list[Any]] = pytesseract.image_to_data(
            source, lang=settings.ocr_language, config=mode, output_type=pytesseract.Output.DICT
        )
    except pytesseract.TesseractNotFoundError:
        raise AnonymizationError("OCR needed for 7FE0,0010 but the tesseract program is not installed") from None
    except Exception as error:
        raise AnonymizationError(f"OCR of 7FE0,0010 failed ({type(error).__name__})") from None
    return data


def _text_boxes(
    picture: NDArray[np.uint8], factor: int, settings: PixelSettings, mode: str, *, confirming: bool
) -> list[tuple[int, int, int, int, int]]:
    """One Tesseract pass: the boxes, margins added, of the words that look like text (``confirming``: the second
    pass, which also takes any word still readable, see ``_READABLE_CONFIDENCE``)."""
    data = _tesseract_words(picture, factor, settings, mode)
    rows, columns = picture.shape
    boxes: list[tuple[int, int, int, int, int]] = []
    seen: set[tuple[int, int, int, int]] = set()
    for index, word in enumerate(data["text"]):
        confidence = float(data["conf"][index])
        letters = sum(char.isalnum() for char in str(word))
        if confidence < settings.ocr_min_confidence or not letters:
            continue
        left = int(data["left"][index]) // factor
        top = int(data["top"][index]) // factor
        right = -(-(int(data["left"][index]) + int(data["width"][index])) // factor)
        bottom = -(-(int(data["top"][index]) + int(data["height"][index])) // factor)
        readable = confirming and letters >= _READABLE_LETTERS and confidence >= _READABLE_CONFIDENCE
        found = _word_box(picture, (left, top, right, bottom), letters, confidence, readable)
        if found is None:
            continue
        left, top, right, bottom = found
        margin = max(settings.ocr_margin, round((bottom - top) * _MARGIN_FRACTION))
        box = (max(0, left - margin), max(0, top - margin), min(columns, right + margin), min(rows, bottom + margin))
        if box not in seen:
            seen.add(box)
            boxes.append((*box, round(confidence)))
    return boxes


_MIN_TEXT_CONTRAST = 48
"""Least spread (5th to 95th percentile, of 255) inside a word box for it to be text rather than a smooth patch
that Tesseract misread (its confidence for real burned-in words can be 0, so confidence alone cannot tell)."""
_MIN_TEXT_HEIGHT = 6
"""Least height of a word box, in pixels: smaller "words" are what Tesseract reads into noise."""
_FLAT = 0.15
_FLAT_SHARE = 0.8
"""Text on a plain ground (a label, the black around an image): this share of the box's pixels that are not
letters lie within ``_FLAT`` of the contrast from their median."""
_UNIFORM_INK = 0.16
_TEXTURE_CONFIDENCE = 50
"""Text on texture (a word over anatomy): its letters are of one colour (their spread at most ``_UNIFORM_INK`` of the
contrast, where speckle's bright grains spread twice as much) and Tesseract reads them with this confidence."""
_SURE_CONFIDENCE = 85
"""A word Tesseract reads with this confidence is taken whatever its ground."""
_READABLE_LETTERS = 3
_READABLE_CONFIDENCE = 60
"""In the second pass, a word of this many letters or digits read with this confidence is taken whatever its ground
and its colours (if its ink is shaped like glyphs): what is still readable once the first boxes are black must go,
even where the first pass could not tell it from texture."""
_MARGIN_FRACTION = 0.2
"""The margin around a word's glyphs, as a fraction of their height (at least ``PixelSettings.ocr_margin``)."""
_GLYPH_MIN_HEIGHT = 0.4
"""A glyph's ink runs down at least this fraction of its word's letter height without a break."""
_GLYPH_MAX_WIDTH = 2.5
"""A glyph (or a few touching ones) is at most this many times as wide as its ink is tall: wider ink is texture."""
_GLYPH_SHARE = 0.6
"""Least share of a word's inked columns that must belong to glyphs."""
_GLYPH_GAP = 0.6
"""Widest gap between two glyphs of one line, in letter heights (a word's box is extended over the glyphs this near
that Tesseract left out of it: a narrow "1", "l" or "^" at an end, the rest of a line it read only in part)."""
_LINE_SLACK = 0.4
"""How far above or below its line's top and bottom a glyph may reach (ascenders, descenders, accents), in line
heights."""


def _word_box(
    picture: NDArray[np.uint8],
    box: tuple[int, int, int, int],
    letters: int,
    confidence: float,
    readable: bool = False,
) -> tuple[int, int, int, int] | None:
    """The box of the glyphs inside Tesseract's word box ``(left, top, right, bottom)``; ``None`` when it holds none.
    ``readable``: Tesseract read the word well enough for its ground and colours not to matter.

    Text is told from speckle and texture by its glyphs: the word's "ink" (pixels beyond the middle of the box's
    5th and 95th percentiles, on the letters' side) falls into columns of ink separated by blank columns, and each
    glyph's ink runs down a good part of the word's height without a break, while being no wider than a few
    letters. Speckle gives ink in almost every column (one wide run) or in small grains; a smooth patch gives no
    contrast. The box is cut to the glyphs (what Tesseract added around them is not blacked out), extended over
    glyphs just beside it that Tesseract left out of the word, never over anything else.
    """
    import numpy as np

    left, top, right, bottom = box
    height = bottom - top
    patch = picture[top:bottom, left:right]
    if height < _MIN_TEXT_HEIGHT or patch.shape[1] < 2:
        return None
    low, high = (float(value) for value in np.percentile(patch, (5, 95)))
    contrast = high - low
    if contrast < _MIN_TEXT_CONTRAST:
        return None
    middle = (low + high) / 2
    # Letters are the minority of a word box's pixels: bright letters when most of the box is dark.
    bright = float(np.median(patch)) < middle
    letters_ink = patch > middle if bright else patch < middle
    ground = patch[~letters_ink].astype(np.float64)
    flat = float(np.mean(np.abs(ground - np.median(ground)) < _FLAT * contrast)) if ground.size else 0.0
    uniform = float(patch[letters_ink].std()) <= _UNIFORM_INK * contrast
    if not (
        readable
        or flat >= _FLAT_SHARE
        or (uniform and confidence >= _TEXTURE_CONFIDENCE)
        or confidence >= _SURE_CONFIDENCE
    ):
        return None
    # The word's whole line, across the image: glyphs beside the word are looked for in it.
    band = picture[top:bottom]
    ink: NDArray[np.bool_] = band > middle if bright else band < middle
    runs, height = _ink_runs(ink, (left, right))
    if height < _MIN_TEXT_HEIGHT:
        return None
    inside = [run for run in runs if run[0] < right and run[1] > left]
    glyphs = [run for run in inside if run[2]]
    if len(glyphs) < max(1, (letters + 1) // 3):
        return None
    first, last = inside.index(glyphs[0]), inside.index(glyphs[-1])
    span = inside[first : last + 1]
    inked = sum(end - begin for begin, end, _ in span)
    if sum(end - begin for begin, end, glyph in span if glyph) < _GLYPH_SHARE * inked:
        return None
    # Extend over glyphs just beside the word, in both directions, as long as each is a glyph and near enough:
    # the rest of a line Tesseract read only in part. Texture stops it (its ink is not shaped like glyphs), and so
    # does a gap wider than letters leave (the edge of a label, the plain ground around a word).
    gap = max(2, round(_GLYPH_GAP * height))
    before, after = runs.index(span[0]), runs.index(span[-1])
    while before > 0 and runs[before - 1][2] and runs[before][0] - runs[before - 1][1] <= gap:
        before -= 1
    while after + 1 < len(runs) and runs[after + 1][2] and runs[after + 1][0] - runs[after][1] <= gap:
        after += 1
    span = runs[before : runs.index(span[0])] + span + runs[runs.index(span[-1]) + 1 : after + 1]
    first_row, last_row = _line_rows(ink, [run for run in span if run[2]])
    return span[0][0], top + first_row, span[-1][1], top + last_row


def _line_rows(ink: NDArray[np.bool_], glyphs: list[tuple[int, int, bool]]) -> tuple[int, int]:
    """The rows ``(first, end)`` of a line of glyphs: each glyph's tallest unbroken ink, kept where it starts and
    ends near the line's (the median glyph's) top and bottom, so that texture touching a letter above or below it
    does not stretch the box; ascenders, descenders and accents stay within that reach."""
    import numpy as np

    spans = []
    for begin, end, _ in glyphs:
        segments = _true_runs(ink[:, begin:end].any(axis=1))
        spans.append(max(segments, key=lambda segment: segment[1] - segment[0]))
    line_top = float(np.median([first for first, _ in spans]))
    line_bottom = float(np.median([end for _, end in spans]))
    slack = _LINE_SLACK * (line_bottom - line_top)
    tops = [first for first, _ in spans if first >= line_top - slack]
    bottoms = [end for _, end in spans if end <= line_bottom + slack]
    return min(tops, default=round(line_top)), max(bottoms, default=round(line_bottom))


def _ink_runs(ink: NDArray[np.bool_], word: tuple[int, int]) -> tuple[list[tuple[int, int, bool]], int]:
    """The runs of inked columns ``(start, end, glyph)`` of a word's band, and the word's letter height.

    A run is a glyph when it is no wider than ``_GLYPH_MAX_WIDTH`` times its tallest unbroken ink, and that ink is
    at least ``_GLYPH_MIN_HEIGHT`` of the letter height: the tallest such ink among the runs within ``word``
    (``(left, right)`` in the band), since Tesseract's box may be taller than its letters.
    """
    measured: list[tuple[int, int, int]] = []
    for begin, end in _true_runs(ink.any(axis=0)):
        tallest = max((stop - first for first, stop in _true_runs(ink[:, begin:end].any(axis=1))), default=0)
        measured.append((begin, end, tallest))
    height = max(
        (
            tallest
            for begin, end, tallest in measured
            if begin < word[1] and end > word[0] and end - begin <= _GLYPH_MAX_WIDTH * tallest
        ),
        default=0,
    )
    runs = [
        (begin, end, tallest >= _GLYPH_MIN_HEIGHT * height and end - begin <= _GLYPH_MAX_WIDTH * tallest)
        for begin, end, tallest in measured
    ]
    return runs, height


def _true_runs(values: Any) -> list[tuple[int, int]]:
    """``(start, end)`` of every run of True in a 1-D array."""
    import numpy as np

    edges = np.flatnonzero(np.diff(np.concatenate(([0], values.astype(np.int8), [0]))))
    return [(int(begin), int(end)) for begin, end in zip(edges[::2], edges[1::2], strict=True)]


# --- preview ------------------------------------------------------------------------------------------------------

PREVIEW_SIZE = 256
"""Each side of a preview fits in a square of this many pixels."""


def redaction_preview(data: bytes, profile: Profile, settings: PixelSettings, frame: int = 1) -> bytes:
    """A PNG of one frame of the DICOM file ``data`` before and after Clean Pixel Data, side by side, each fitted in
    :data:`PREVIEW_SIZE` pixels: the boxes ``profile`` and ``settings`` would black out, for a person to look at
    before committing. It shows the original pixels: serve it only to those who may see them.

    Only that frame is read for text. Raises :class:`AnonymizationError` (the profile refuses the instance, no
    pixel data, no such frame, an undecodable encoding).
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        dataset = dcmread(BytesIO(data))
    except (InvalidDicomError, ValueError, EOFError) as error:
        raise AnonymizationError(f"not a readable DICOM file ({type(error).__name__})") from None
    if _PIXEL_DATA not in dataset:
        raise AnonymizationError("7FE0,0010: the instance has no pixel data")
    plan, _ = plan_pixel_work(dataset, profile, settings)
    image = decode_frames(dataset)
    count = image.frames.shape[0]
    if not 1 <= frame <= count:
        raise AnonymizationError(f"frame {frame}: the instance has {count} frame(s), counted from 1")
    before = image.frames[frame - 1]
    after = before.copy()
    if plan is not None:
        black = _black_value(image, dataset)
        rows, columns = before.shape[:2]
        for _, region in plan.regions:
            left, top, right, bottom = region.box(rows, columns)
            after[top:bottom, left:right] = black
        if plan.ocr:
            for left, top, right, bottom, _ in find_text_boxes(before, image, settings):
                after[top:bottom, left:right] = black
    low, high = _display_range(before, image)
    pictures = [_display(side, image, low, high) for side in (before, after)]
    return _side_by_side(pictures)


def _display_range(frame: NDArray[Any], image: DecodedImage) -> tuple[float, float]:
    """The stored values shown from black to white: the frame's own range (colour: 0 to 255)."""
    if image.palette is not None or frame.shape[2] == 3:
        return 0.0, 255.0
    return float(frame.min()), float(frame.max())


def _display(frame: NDArray[Any], image: DecodedImage, low: float, high: float) -> NDArray[Any]:
    """8-bit RGB (colour, palette) or grey (monochrome, MONOCHROME1 inverted) for a person to look at."""
    import numpy as np

    if image.palette is not None:
        colours = image.palette[frame[..., 0]].astype(np.float64)
        top = float(image.palette.max()) or 1.0
        shown: NDArray[Any] = np.clip(np.rint(colours * 255.0 / top), 0, 255).astype(np.uint8)
        return shown
    if frame.shape[2] == 3:
        colour: NDArray[Any] = np.clip(frame, 0, 255).astype(np.uint8)
        return colour
    scaled = (frame[..., 0].astype(np.float64) - low) * (255.0 / (high - low)) if high > low else frame[..., 0] * 0.0
    if image.photometric == "MONOCHROME1":
        scaled = 255.0 - scaled
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _side_by_side(pictures: list[NDArray[Any]]) -> bytes:
    """The pictures fitted in :data:`PREVIEW_SIZE` and set side by side, 8 grey pixels apart, as PNG bytes."""
    from PIL import Image

    images = [Image.fromarray(picture) for picture in pictures]
    for image in images:
        image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.BOX)
    gap = 8
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    height = max(image.height for image in images)
    sheet = Image.new("RGB", (width, height), (128, 128, 128))
    x = 0
    for image in images:
        sheet.paste(image.convert("RGB"), (x, 0))
        x += image.width + gap
    buffer = BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()
