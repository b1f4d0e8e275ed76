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

The parts: :mod:`.rules` (redaction rules as data), :mod:`.plan` (settings, the plan for one instance, the
cleaning), :mod:`.codecs` (decoding, the black value, re-encoding), :mod:`.ocr` (text detection), :mod:`.preview`
(a before/after picture). The optional back ends (numpy, the pixel codecs, pytesseract and Pillow) are imported
inside the functions that use them, so importing this package costs nothing and an engine without
``CleanPixelData`` never touches them.
"""

from __future__ import annotations

from orthanc_anonymizer.deid.pixels.codecs import DecodedImage, decode_frames, encode_frames
from orthanc_anonymizer.deid.pixels.ocr import find_text_boxes
from orthanc_anonymizer.deid.pixels.plan import (
    OcrMode,
    PixelOutcome,
    PixelPlan,
    PixelSettings,
    clean_pixel_data,
    plan_pixel_work,
)
from orthanc_anonymizer.deid.pixels.preview import PREVIEW_SIZE, redaction_preview
from orthanc_anonymizer.deid.pixels.rules import (
    SHIPPED_RULES_DIRECTORY,
    Criterion,
    Extent,
    RedactionRule,
    Region,
    load_redaction_rules,
    parse_redaction_rules,
    shipped_redaction_rules,
)

__all__ = [
    "PREVIEW_SIZE",
    "SHIPPED_RULES_DIRECTORY",
    "Criterion",
    "DecodedImage",
    "Extent",
    "OcrMode",
    "PixelOutcome",
    "PixelPlan",
    "PixelSettings",
    "RedactionRule",
    "Region",
    "clean_pixel_data",
    "decode_frames",
    "encode_frames",
    "find_text_boxes",
    "load_redaction_rules",
    "parse_redaction_rules",
    "plan_pixel_work",
    "redaction_preview",
    "shipped_redaction_rules",
]
