"""Text detection: Tesseract (through pytesseract and Pillow, imported when a frame is read) finds the words burned
into one frame; only their boxes leave this module, never the text."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from orthanc_anonymizer.deid.pixels.codecs import DecodedImage
from orthanc_anonymizer.errors import AnonymizationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from orthanc_anonymizer.deid.pixels.plan import PixelSettings


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
