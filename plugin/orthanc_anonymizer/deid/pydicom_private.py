"""The pydicom internals the engine reads, where pydicom has no public API for what it needs.

Checked against pydicom 3.0.2 (the pinned version): on an upgrade, check these four and nothing else. Everything
else in the engine uses pydicom's public API (``Tag.is_private``, ``Tag.private_creator``, ``UID.name``,
``pydicom.datadict`` look-ups, ``Dataset.original_character_set``...).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableSequence

from pydicom.dataset import Dataset


def text_encodings(dataset: Dataset) -> str | list[str]:
    """The Python codecs ``dataset``'s text values are decoded and written with: its own Specific Character Set,
    else (a sequence item without one) the enclosing data set's.

    pydicom keeps this as ``Dataset._character_set`` (its ``_parent_encoding`` for an item); the public
    ``original_character_set`` is what the data set was read with, which is not the same once the walk changes
    Specific Character Set, nor for an item."""
    return dataset._character_set


def conversion_encodings(dataset: Dataset) -> str | MutableSequence[str]:
    """The Python codecs ``dataset[tag]`` converts a text element of ``dataset`` still as read with: those it was
    read with, else its current ones (``Dataset.__getitem__`` in 3.0.2), for converting it later the same way."""
    return dataset.original_character_set or dataset._character_set


def data_dictionary_names() -> Iterator[str]:
    """The name of every entry of pydicom's data dictionary (repeating groups aside).

    ``pydicom.datadict`` looks entries up one tag at a time; its public ``keyword_dict`` leaves out the entries
    without a keyword (5 in 3.0.2, whose names hold words the text cleaner must know), so the table itself is read.
    """
    from pydicom._dicom_dict import DicomDictionary

    for entry in DicomDictionary.values():
        yield entry[2]


def forget_decoded_pixels(dataset: Dataset) -> None:
    """Drop the array pydicom may have decoded from ``dataset``'s Pixel Data before it was rewritten, so that
    ``Dataset.pixel_array`` decodes the new pixels. pydicom resets this cache itself only when Pixel Data is
    deleted, not when it is set."""
    dataset._pixel_array = None
    dataset._pixel_id = {}
