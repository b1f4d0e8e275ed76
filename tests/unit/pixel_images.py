"""Generated DICOM images with text drawn into known places, for the Clean Pixel Data tests (PS3.15 E.3.1).

Each image is a smooth, never-black background with white words drawn by Pillow's default font; ``Drawn`` keeps the
mask of the pixels the words touched, so a test can check that exactly those are black after redaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.utils import compress
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
SC_MULTIFRAME_TRUE_COLOR = "1.2.840.10008.5.1.4.1.1.7.4"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
# Identifying values, drawn into the pixels as a scanner would; the same ones are in the header.
PATIENT_NAME = "DOE^JANE"
PATIENT_ID = "PID 4711"
STUDY_DATE = "2024 MARCH 05"
WORDS = (PATIENT_NAME, PATIENT_ID, STUDY_DATE)


@dataclass
class Drawn:
    """A generated instance and what was drawn into it."""

    dataset: Dataset
    pixels: NDArray[np.uint8] | NDArray[np.uint16]
    """Every frame as drawn, ``(frames, rows, columns, samples)``, before any encoding."""
    text: NDArray[np.bool_]
    """``(frames, rows, columns)``: True where a word touched the pixel."""


def background(rows: int, columns: int, frame: int = 0, high: int = 110) -> NDArray[np.float64]:
    """A smooth picture between 20 and ``high``: no black pixel, nothing Tesseract reads as a letter."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    wave = np.sin((y + 7 * frame) / 23.0) * np.cos(x / 31.0)
    return 20 + (high - 20) * (0.5 * x / columns + 0.25 * (wave + 1))


def text_layer(rows: int, columns: int, words: list[tuple[int, int, str]], size: int = 20) -> NDArray[np.float64]:
    """Coverage (0 to 1) of ``words`` drawn at ``(left, top)`` in white with Pillow's default font."""
    layer = Image.new("L", (columns, rows), 0)
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=size)
    for left, top, word in words:
        draw.text((left, top), word, fill=255, font=font)
    return np.asarray(layer, dtype=np.float64) / 255.0


def frames_with_text(
    rows: int, columns: int, words_per_frame: list[list[tuple[int, int, str]]], white: int = 255, high: int = 110
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    pictures, masks = [], []
    for index, words in enumerate(words_per_frame):
        coverage = text_layer(rows, columns, words)
        ground = background(rows, columns, index, high)
        pictures.append(ground * (1 - coverage) + white * coverage)
        masks.append(coverage > 0)
    return np.stack(pictures), np.stack(masks)


def base_dataset(sop_class: str, modality: str, rows: int, columns: int, frames: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.StudyDate = "20240305"
    ds.Modality = modality
    ds.Rows = rows
    ds.Columns = columns
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def make_instance(
    *,
    words_per_frame: list[list[tuple[int, int, str]]],
    rows: int = 240,
    columns: int = 320,
    color: bool = False,
    bits: int = 8,
    encoding: str = "native",
    sop_class: str = SC_IMAGE,
    modality: str = "OT",
    manufacturer: str | None = None,
    burned_in: str | None = None,
) -> Drawn:
    """An instance whose frames show ``words_per_frame``; ``encoding`` is ``native``, ``rle`` or ``jpeg``."""
    white = (1 << bits) - 1 if bits > 8 else 255
    high = 110 if bits == 8 else 110 * 16
    grey, text = frames_with_text(rows, columns, words_per_frame, white, high)
    dtype = np.uint8 if bits == 8 else np.uint16
    if color:
        tint = np.stack([grey, grey * 0.8, np.clip(grey * 1.1, 0, 255)], axis=-1)
        pixels = np.clip(np.rint(tint), 0, white).astype(dtype)
    else:
        pixels = np.clip(np.rint(grey), 0, white).astype(dtype)[..., np.newaxis]
    ds = dataset_from_pixels(
        pixels,
        color=color,
        bits=bits,
        encoding=encoding,
        sop_class=sop_class,
        modality=modality,
        manufacturer=manufacturer,
        burned_in=burned_in,
    )
    return Drawn(ds, pixels, text)


def dataset_from_pixels(
    pixels: NDArray[np.uint8] | NDArray[np.uint16],
    *,
    color: bool,
    bits: int = 8,
    encoding: str = "native",
    sop_class: str = SC_IMAGE,
    modality: str = "OT",
    manufacturer: str | None = None,
    burned_in: str | None = None,
) -> Dataset:
    """An instance holding ``pixels`` (``(frames, rows, columns, samples)``); ``encoding`` is ``native``, ``rle`` or
    ``jpeg`` (baseline, 8-bit)."""
    frames, rows, columns = pixels.shape[:3]
    ds = base_dataset(sop_class, modality, rows, columns, frames)
    if manufacturer is not None:
        ds.Manufacturer = manufacturer
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = "RGB" if color else "MONOCHROME2"
    if color:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    shaped = pixels if color else pixels[..., 0]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(shaped[0] if frames == 1 else shaped).tobytes()
    if encoding == "rle":
        compress(ds, RLELossless, generate_instance_uid=False)
    elif encoding == "jpeg":
        if bits != 8:
            raise ValueError("JPEG baseline is 8-bit")
        encoded = []
        for frame in pixels:
            picture = Image.fromarray(frame if color else frame[..., 0], "RGB" if color else "L")
            buffer = BytesIO()
            # 4:2:2 chroma subsampling, as YBR_FULL_422 says
            picture.save(buffer, "JPEG", quality=92, subsampling=1)
            encoded.append(buffer.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        if color:
            ds.PhotometricInterpretation = "YBR_FULL_422"
    elif encoding != "native":
        raise ValueError(encoding)
    return ds
