"""Decoding every frame with pydicom's pixel back ends, the stored value that shows black, and writing the frames back
losslessly. The back ends (numpy, pylibjpeg and its plugins, pyjpegls) are imported inside the functions, when an
instance is cleaned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless

from orthanc_anonymizer.deid.pixels.rules import attribute_text
from orthanc_anonymizer.deid.pydicom_private import forget_decoded_pixels
from orthanc_anonymizer.errors import AnonymizationError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from orthanc_anonymizer.deid.pixels.plan import PixelSettings

PIXEL_DATA = 0x7FE00010
BURNED_IN_ANNOTATION = 0x00280301
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
OUTPUT_SYNTAXES = {"RLELossless": RLELossless, "ExplicitVRLittleEndian": ExplicitVRLittleEndian}


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


def black_value(image: DecodedImage, dataset: Dataset) -> int:
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
    target = OUTPUT_SYNTAXES[settings.compressed_output] if source.is_compressed else source
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
        element = dataset[PIXEL_DATA]
        element.VR = "OB" if int(dataset.BitsAllocated) <= 8 else "OW"
        element.is_undefined_length = False
        dataset.file_meta.TransferSyntaxUID = target
    if target != source:
        changed.append(0x00020010)
    if str(source) in _LOSSY_SYNTAXES and attribute_text(dataset, 0x00282110) != "00":
        # PS3.3 C.7.6.1.1.5: once lossy, always lossy; decompressing does not undo it.
        if attribute_text(dataset, 0x00282110) != "01":
            dataset.LossyImageCompression = "01"
            changed.append(0x00282110)
        if "LossyImageCompressionMethod" not in dataset:
            dataset.LossyImageCompressionMethod = _LOSSY_METHOD[str(source)]
            changed.append(0x00282114)
    forget_decoded_pixels(dataset)
    return changed
