"""How Clean Pixel Data draws a word's box (PS3.15 E.3.1), with Tesseract's answers given: the tests choose which
words it "reads" and where, so each rule is checked on its own.

- a box follows the glyphs, grown by a fifth of their height (at least 2 pixels), never to a label's edge;
- glyphs Tesseract left out of a word are covered when they are beside it on its line, not across a wide gap;
- a low-confidence "word" in speckle gives no box;
- the second pass takes a word still readable that the first refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pixel_images import text_layer
from pydicom.uid import ExplicitVRLittleEndian

from orthanc_anonymizer.deid.pixels import DecodedImage, PixelSettings, ocr

Reading = tuple[str, float, tuple[int, int, int, int]]


def fake_tesseract(monkeypatch: pytest.MonkeyPatch, sparse: list[Reading], page: list[Reading] | None = None) -> None:
    """Tesseract "reads" ``sparse`` in the first pass and ``page`` in the second (boxes in frame pixels)."""

    def read(picture: NDArray[np.uint8], factor: int, settings: PixelSettings, mode: str) -> dict[str, list[Any]]:
        words = sparse if mode == ocr._SPARSE_TEXT else page or []
        return {
            "text": [text for text, _, _ in words],
            "conf": [confidence for _, confidence, _ in words],
            "left": [box[0] * factor for _, _, box in words],
            "top": [box[1] * factor for _, _, box in words],
            "width": [(box[2] - box[0]) * factor for _, _, box in words],
            "height": [(box[3] - box[1]) * factor for _, _, box in words],
        }

    monkeypatch.setattr(ocr, "_tesseract_words", read)


def boxes(picture: NDArray[np.float64]) -> list[tuple[int, int, int, int, int]]:
    frame = np.clip(np.rint(picture), 0, 255).astype(np.uint8)[..., np.newaxis]
    image = DecodedImage(frame[np.newaxis], "MONOCHROME2", 8, False, ExplicitVRLittleEndian)
    return ocr.find_text_boxes(frame, image, PixelSettings())


def bounds(mask: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def speckle(rows: int, columns: int) -> NDArray[np.float64]:
    return np.clip(np.random.default_rng(5).gamma(2.0, 40.0, (rows, columns)), 0, 255)


def drawn(ground: NDArray[np.float64], left: int, top: int, text: str) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    coverage = text_layer(ground.shape[0], ground.shape[1], [(left, top, text)])
    return ground * (1 - coverage) + 255 * coverage, coverage > 0.5


def test_box_follows_the_glyphs_with_its_margin_and_covers_what_tesseract_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ground = speckle(120, 320)
    ground[30:70, 10:300] = 0  # a black label running far past the text, speckle beyond it
    picture, ink = drawn(ground, 20, 38, "PID 4711")
    _, part = drawn(np.zeros_like(ground), 20, 38, "PID 47")
    # Tesseract read "PID 47" only (it often drops a narrow "1" at a word's end).
    fake_tesseract(monkeypatch, [("PID", 90, bounds(part))])
    (box,) = boxes(picture)
    left, top, right, bottom = bounds(ink)
    margin = max(2, round((bottom - top) / 5))
    assert box[:4] == pytest.approx((left - margin, top - margin, right + margin, bottom + margin), abs=1)
    assert box[2] < 150, "the box ran on along the label"


def test_no_growth_across_a_wide_gap_to_another_word(monkeypatch: pytest.MonkeyPatch) -> None:
    ground = np.zeros((80, 400))
    picture, first = drawn(ground, 10, 20, "DOE")
    picture, second = drawn(picture, 10 + (bounds(first)[2] - 10) + 60, 20, "JANE")  # 3 letter heights away
    fake_tesseract(monkeypatch, [("DOE", 80, bounds(first))])
    (box,) = boxes(picture)
    assert box[2] < bounds(second)[0], "the box of DOE reached JANE"


def test_fragments_in_speckle_are_not_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    picture = speckle(200, 300)
    readings = [("ane", 30, (40, 40, 60, 50)), ("Pers", 45, (100, 90, 130, 100)), ("SE", 0, (200, 150, 215, 158))]
    fake_tesseract(monkeypatch, readings, readings)
    assert boxes(picture) == []


def test_second_pass_takes_a_word_still_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    rows, columns = 100, 300
    y, x = np.mgrid[0:rows, 0:columns]
    ground = 90 + 40 * np.sin(x / 5.0) * np.cos(y / 7.0)  # texture: no plain ground around the letters
    coverage = text_layer(rows, columns, [(30, 40, "SMITH")])
    ink = 150 + 105 * (x - 30) / 70.0  # letters shaded across the word, not of one colour
    picture = ground * (1 - coverage) + np.clip(ink, 150, 255) * coverage
    where = bounds(coverage > 0.5)
    fake_tesseract(monkeypatch, [("SMITH", 40, where)], [("SMITH", 40, where)])
    assert boxes(picture) == [], "a hesitant reading on texture alone makes no box"
    fake_tesseract(monkeypatch, [("SMITH", 40, where)], [("SMITH", 70, where)])
    (box,) = boxes(picture)
    assert box[0] <= where[0] and box[1] <= where[1] and box[2] >= where[2] and box[3] >= where[3]
