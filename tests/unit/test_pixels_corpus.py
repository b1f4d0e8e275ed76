"""Clean Pixel Data on a corpus of the images sites send (``pixel_corpus.py``): every word gone, the rest kept.

For each generated image (an ultrasound fan with labels, a CT with corner text, an 8-bit cine, words straight on
texture; RGB and MONOCHROME2, uncompressed and JPEG baseline), the test knows each word's true box because it drew
it. After ``CleanPixelData``: Tesseract (sparse text and page layout, over the words' places) reads no run of 3
characters of any word, and the pixels that changed outside the true boxes (grown by a quarter of their height
plus 2 pixels) are at most 0.5 % of the image: compared exactly for lossless sources, and for JPEG sources as
pydicom decodes the source and the output.
"""

from __future__ import annotations

import pytest
from pixel_corpus import CASES, measure

MOST_CHANGED_OUTSIDE = 0.005


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_word_gone_and_the_image_kept(name: str) -> None:
    case = CASES[name]()
    assert case.name == name
    figures = measure(case)
    assert figures.left_before, f"{case.name}: OCR reads no word in the source, the case proves nothing"
    assert not figures.left_after, f"{case.name}: OCR still reads {len(figures.left_after)} pieces of the words"
    assert figures.outside_share <= MOST_CHANGED_OUTSIDE, (
        f"{case.name}: {figures.outside_share:.3%} of the pixels changed outside the words"
    )
