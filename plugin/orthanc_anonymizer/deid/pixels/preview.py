"""A picture of one frame before and after Clean Pixel Data, side by side, for a person to look at before committing.
It shows the original pixels."""

from __future__ import annotations

from io import BytesIO
from typing import TYPE_CHECKING, Any

from orthanc_anonymizer.deid.pixels import codecs, ocr
from orthanc_anonymizer.deid.pixels.codecs import PIXEL_DATA, DecodedImage
from orthanc_anonymizer.deid.pixels.plan import PixelSettings, plan_pixel_work
from orthanc_anonymizer.deid.profiles import Profile
from orthanc_anonymizer.errors import AnonymizationError

if TYPE_CHECKING:
    from numpy.typing import NDArray


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
    if PIXEL_DATA not in dataset:
        raise AnonymizationError("7FE0,0010: the instance has no pixel data")
    plan, _ = plan_pixel_work(dataset, profile, settings)
    image = codecs.decode_frames(dataset)
    count = image.frames.shape[0]
    if not 1 <= frame <= count:
        raise AnonymizationError(f"frame {frame}: the instance has {count} frame(s), counted from 1")
    before = image.frames[frame - 1]
    after = before.copy()
    if plan is not None:
        black = codecs.black_value(image, dataset)
        rows, columns = before.shape[:2]
        for _, region in plan.regions:
            left, top, right, bottom = region.box(rows, columns)
            after[top:bottom, left:right] = black
        if plan.ocr:
            for left, top, right, bottom, _ in ocr.find_text_boxes(before, image, settings):
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
