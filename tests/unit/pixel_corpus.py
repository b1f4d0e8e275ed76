"""A corpus of generated images of the kinds sites send, with identifying words drawn where the test knows.

Each :class:`Case` is one instance: an ultrasound fan of speckle with labels, a CT slice with corner text, an 8-bit
cine, a screen capture with words straight on texture; RGB and MONOCHROME2, uncompressed and JPEG baseline. The
true box of every word is the bounding box of the pixels its drawing touched. :func:`measure` anonymizes a case
under ``CleanPixelData`` and gives what the README reports: what OCR still reads of the words, and how many
pixels changed outside the true boxes grown by :func:`allowance`.

``python tests/unit/pixel_corpus.py`` prints the figures per case (and saves before/after PNGs to a folder given).
"""

from __future__ import annotations

import re
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytesseract
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixel_images import CT_IMAGE, US_IMAGE, US_MULTIFRAME, dataset_from_pixels

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes, write_dataset
from orthanc_anonymizer.deid.pixels import DecodedImage, PixelSettings
from orthanc_anonymizer.deid.pixels.ocr import _ocr_picture
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher

NAME = "DOE^JANE"
OTHER_NAME = "SMITH^ROBERT"
PATIENT_ID = "ID 4711-0815"
DATE = "2024 MARCH 05"
INSTITUTION = "ST MARY HOSPITAL"


@dataclass
class Word:
    left: int
    top: int
    text: str
    size: int = 20


@dataclass
class Case:
    """One corpus instance: the dataset and, per frame, the true box ``(left, top, right, bottom)`` of each word."""

    name: str
    kind: str
    dataset: Dataset
    boxes: list[list[tuple[int, int, int, int]]]
    words: list[str]


def _draw(shape: tuple[int, int], words: list[Word]) -> tuple[NDArray[np.float64], list[tuple[int, int, int, int]]]:
    """Coverage (0 to 1) of ``words`` in white, and each word's true box."""
    rows, columns = shape
    total = np.zeros(shape)
    boxes = []
    for word in words:
        layer = Image.new("L", (columns, rows), 0)
        ImageDraw.Draw(layer).text((word.left, word.top), word.text, fill=255, font=ImageFont.load_default(word.size))
        coverage = np.asarray(layer, dtype=np.float64) / 255.0
        ys, xs = np.nonzero(coverage)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
        total = np.maximum(total, coverage)
    return total, boxes


def _smooth(values: NDArray[np.float64], passes: int = 1) -> NDArray[np.float64]:
    """A 3x3 mean, ``passes`` times (grain a few pixels wide, as real speckle and noise have)."""
    for _ in range(passes):
        padded = np.pad(values, 1, mode="edge")
        values = sum(padded[dy : dy + values.shape[0], dx : dx + values.shape[1]] for dy in range(3) for dx in range(3))
        values = values / 9.0
    return values


def _fan(rows: int, columns: int, seed: int, grain: int = 0) -> NDArray[np.float64]:
    """A sector of speckle (gamma-distributed, bands of echo; ``grain`` smoothing passes), black around it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    apex_x, apex_y = columns / 2, rows * 0.06
    radius = np.hypot(x - apex_x, y - apex_y)
    angle = np.degrees(np.arctan2(x - apex_x, y - apex_y))
    inside = (radius > rows * 0.08) & (radius < rows * 0.9) & (np.abs(angle) < 38)
    speckle = rng.gamma(2.0, 40.0, (rows, columns)) * (0.6 + 0.4 * np.sin(radius / 17) ** 2)
    if grain:
        speckle = _smooth(speckle, grain) * 1.6
    return np.where(inside, np.clip(speckle, 0, 255), 0.0)


def _tissue(rows: int, columns: int, seed: int, low: float, high: float) -> NDArray[np.float64]:
    """Smooth structures with fine noise between ``low`` and ``high``: anatomy, not text."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    waves = np.sin(x / 13.0 + np.cos(y / 29.0) * 3) * np.cos(y / 17.0) + 0.5 * np.sin((x + y) / 7.0)
    noise = _smooth(rng.normal(0, 1, (rows, columns)), 2)
    shade = (waves - waves.min()) / (waves.max() - waves.min()) + 0.6 * noise
    shade = (shade - shade.min()) / (shade.max() - shade.min())
    return low + (high - low) * shade


def _frames(
    grounds: list[NDArray[np.float64]], words: list[list[Word]], labels: list[tuple[int, int, int, int]], white: float
) -> tuple[NDArray[np.float64], list[list[tuple[int, int, int, int]]]]:
    pictures, boxes = [], []
    for ground, frame_words in zip(grounds, words, strict=True):
        ground = ground.copy()
        for left, top, right, bottom in labels:
            ground[top:bottom, left:right] = 0
        coverage, frame_boxes = _draw(ground.shape, frame_words)
        pictures.append(ground * (1 - coverage) + white * coverage)
        boxes.append(frame_boxes)
    return np.stack(pictures), boxes


def _to_pixels(grey: NDArray[np.float64], color: bool, white: int) -> NDArray[Any]:
    dtype = np.uint8 if white == 255 else np.uint16
    if color:
        return np.clip(np.rint(np.stack([grey, grey * 0.95, grey], axis=-1)), 0, white).astype(dtype)
    return np.clip(np.rint(grey), 0, white).astype(dtype)[..., np.newaxis]


def us_fan(encoding: str, color: bool = True, grain: int = 0) -> Case:
    """640x480 ultrasound: name on the black above the fan, ID on a black label at the fan's right edge, date at
    the bottom, institution on a label at the fan's left edge; BurnedInAnnotation YES. RGB with fine speckle, or
    MONOCHROME2 with coarser grain (``grain`` smoothing passes)."""
    rows, columns = 480, 640
    words = [Word(12, 8, NAME), Word(478, 204, PATIENT_ID, 16), Word(440, 452, DATE), Word(40, 300, INSTITUTION, 14)]
    labels = [(470, 198, 600, 230), (34, 294, 190, 322)]
    grey, boxes = _frames([_fan(rows, columns, 19, grain)], [words], labels, 255)
    pixels = _to_pixels(grey, color, 255)
    dataset = dataset_from_pixels(
        pixels, color=color, encoding=encoding, sop_class=US_IMAGE, modality="US", burned_in="YES"
    )
    photometric = "rgb" if color else "mono8"
    kind = f"US fan, {'RGB' if color else 'MONOCHROME2'}, labels at the fan's edges"
    return Case(f"us-fan-{photometric}-{encoding}", kind, dataset, boxes, [w.text for w in words])


def ct_corners() -> Case:
    """512x512 CT, 12 bits in 16, MONOCHROME2: a body of tissue, corner text on the air around it."""
    rows = columns = 512
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    body = ((x - 256) / 200) ** 2 + ((y - 270) / 170) ** 2 < 1
    ground = np.where(body, _tissue(rows, columns, 7, 700, 1500), 0.0)
    words = [
        Word(8, 6, NAME, 16),
        Word(380, 6, PATIENT_ID, 16),
        Word(8, 486, DATE, 16),
        Word(330, 486, INSTITUTION, 16),
    ]
    grey, boxes = _frames([ground], [words], [], 4095)
    pixels = _to_pixels(grey, False, 4095)
    dataset = dataset_from_pixels(pixels, color=False, bits=12, sop_class=CT_IMAGE, modality="CT", burned_in="YES")
    return Case(
        "ct-corners-mono16-native",
        "CT, MONOCHROME2 16-bit, corner text on air",
        dataset,
        boxes,
        [w.text for w in words],
    )


def cine(encoding: str) -> Case:
    """Three 8-bit MONOCHROME2 frames (an angiography-like cine) with a label bar at the bottom, name and date."""
    rows = columns = 320
    grounds = [_tissue(rows, columns, 30 + index, 40, 200) for index in range(3)]
    words = [[Word(10, 290, NAME, 18), Word(170, 290, DATE, 18)]] * 3
    grey, boxes = _frames(grounds, words, [(0, 284, 320, 320)], 255)
    pixels = _to_pixels(grey, False, 255)
    dataset = dataset_from_pixels(
        pixels, color=False, encoding=encoding, sop_class=US_MULTIFRAME, modality="XA", burned_in="YES"
    )
    return Case(
        f"cine-mono8-3-frames-{encoding}", "8-bit cine, 3 frames, MONOCHROME2, label bar", dataset, boxes, [NAME, DATE]
    )


def on_texture(encoding: str, color: bool) -> Case:
    """400x300 screen capture: words straight on anatomy-like texture, no label."""
    rows, columns = 300, 400
    ground = _tissue(rows, columns, 3, 30, 150)
    words = [Word(20, 30, OTHER_NAME), Word(200, 140, PATIENT_ID), Word(60, 250, DATE)]
    grey, boxes = _frames([ground], [words], [], 255)
    pixels = _to_pixels(grey, color, 255)
    photometric = "rgb" if color else "mono8"
    dataset = dataset_from_pixels(pixels, color=color, encoding=encoding, modality="OT", burned_in="YES")
    return Case(
        f"texture-{photometric}-{encoding}",
        f"words on texture, {'RGB' if color else 'MONOCHROME2'}",
        dataset,
        boxes,
        [w.text for w in words],
    )


CASES: dict[str, Callable[[], Case]] = {
    "us-fan-rgb-native": lambda: us_fan("native"),
    "us-fan-rgb-jpeg": lambda: us_fan("jpeg"),
    "us-fan-mono8-native": lambda: us_fan("native", color=False, grain=1),
    "ct-corners-mono16-native": ct_corners,
    "cine-mono8-3-frames-native": lambda: cine("native"),
    "cine-mono8-3-frames-jpeg": lambda: cine("jpeg"),
    "texture-rgb-native": lambda: on_texture("native", True),
    "texture-mono8-jpeg": lambda: on_texture("jpeg", False),
}
"""Every case by its name (the name each case's :class:`Case` carries)."""


def allowance(box: tuple[int, int, int, int]) -> int:
    """Pixels around a true word box within which a change counts as the word's: a quarter of its height plus 2."""
    return (box[3] - box[1]) // 4 + 2


def frames_of(dataset: Dataset) -> NDArray[Any]:
    """Every frame as ``(frames, rows, columns, samples)``, decoded by pydicom (colour as RGB)."""
    array = dataset.pixel_array
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    return array.reshape(frames, int(dataset.Rows), int(dataset.Columns), int(dataset.SamplesPerPixel))


def read_text(frames: NDArray[Any], photometric: str) -> list[list[tuple[int, int, int, int, str]]]:
    """The words Tesseract reads in each frame, sparse text and page layout, prepared as the engine prepares the
    frame, with their boxes (test only)."""
    image = DecodedImage(frames, photometric, 16, False, ExplicitVRLittleEndian)
    found = []
    for frame in frames:
        texts: list[tuple[int, int, int, int, str]] = []
        found.append(texts)
        picture, factor = _ocr_picture(frame, image)
        enlarged = Image.fromarray(picture).resize((picture.shape[1] * factor, picture.shape[0] * factor))
        for mode in ("--psm 11", "--psm 3"):
            data = pytesseract.image_to_data(enlarged, config=mode, output_type=pytesseract.Output.DICT)
            for index, text in enumerate(data["text"]):
                left, top = data["left"][index] // factor, data["top"][index] // factor
                right = left + data["width"][index] // factor
                bottom = top + data["height"][index] // factor
                texts.append((left, top, right, bottom, str(text)))
    return found


def readable_pieces(case: Case, found: list[list[tuple[int, int, int, int, str]]]) -> set[str]:
    """The runs of 3 characters (letters and digits) of any word that OCR reads where the words were drawn.

    Only what is read over a word's box (grown by :func:`allowance`) counts: Tesseract reads speckle as short
    garbage words ("ane", "ers"), which may hold 3 letters of a name by chance.
    """
    pieces = set()
    for boxes, texts in zip(case.boxes, found, strict=True):
        read = [
            re.sub(r"[^0-9A-Z]", "", text.upper())
            for left, top, right, bottom, text in texts
            if any(_overlaps((left, top, right, bottom), box, allowance(box)) for box in boxes)
        ]
        for word in case.words:
            letters = re.sub(r"[^0-9A-Z]", "", word.upper())
            for index in range(len(letters) - 2):
                piece = letters[index : index + 3]
                if any(piece in token for token in read):
                    pieces.add(piece)
    return pieces


def _overlaps(first: tuple[int, int, int, int], box: tuple[int, int, int, int], grow: int) -> bool:
    return (
        first[0] < box[2] + grow and first[2] > box[0] - grow and first[1] < box[3] + grow and first[3] > box[1] - grow
    )


@dataclass
class Figures:
    name: str
    kind: str
    pixels: int
    changed_outside: int
    left_before: set[str]
    left_after: set[str]
    boxes: int
    seconds: float
    before: NDArray[Any]
    after: NDArray[Any]

    @property
    def outside_share(self) -> float:
        return self.changed_outside / self.pixels


def measure(case: Case, pixel_settings: PixelSettings | None = None) -> Figures:
    """Anonymize ``case`` under CleanPixelData; read both sides with OCR and count the changes outside the words."""
    settings = AnonymizationSettings(
        profile=basic_profile(["CleanPixelData"]),
        hasher=KeyedHasher(b"pixel corpus"),
        pixels=pixel_settings or PixelSettings(rules=()),
    )
    data = write_dataset(case.dataset)
    started = _cpu()
    output, report = anonymize_bytes(data, settings)
    seconds = _cpu() - started
    before = frames_of(dcmread(BytesIO(data)))
    after = frames_of(dcmread(BytesIO(output)))
    changed = np.any(before != after, axis=-1)
    allowed = np.zeros_like(changed)
    for index, boxes in enumerate(case.boxes):
        for box in boxes:
            grow = allowance(box)
            allowed[index, max(0, box[1] - grow) : box[3] + grow, max(0, box[0] - grow) : box[2] + grow] = True
    photometric = "MONOCHROME2" if before.shape[-1] == 1 else "RGB"
    return Figures(
        case.name,
        case.kind,
        int(changed.size),
        int((changed & ~allowed).sum()),
        readable_pieces(case, read_text(before, photometric)),
        readable_pieces(case, read_text(after, photometric)),
        len(report.pixel_regions),
        seconds,
        before,
        after,
    )


def _cpu() -> float:
    """CPU seconds of this process and of the Tesseract processes it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(arguments: list[str]) -> None:
    folder = Path(arguments[0]) if arguments else None
    print(
        "| image | pixels changed outside the words | all pixels changed | pieces read before → after | boxes | CPU s |"
    )
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for make in CASES.values():
        figures = measure(make())
        print(
            f"| {figures.name} | {figures.outside_share:.3%} ({figures.changed_outside} px)"
            f" | {np.any(figures.before != figures.after, axis=-1).mean():.2%}"
            f" | {len(figures.left_before)} → {len(figures.left_after)}"
            f" | {figures.boxes} | {figures.seconds:.2f} |"
        )
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for side, frames in (("before", figures.before), ("after", figures.after)):
                frame = frames[0][..., 0] if frames.shape[-1] == 1 else frames[0]
                if frame.dtype != np.uint8:
                    frame = (frame.astype(np.float64) * 255 / max(1, int(frame.max()))).astype(np.uint8)
                Image.fromarray(frame).save(folder / f"{figures.name}-{side}.png")


if __name__ == "__main__":
    main(sys.argv[1:])
