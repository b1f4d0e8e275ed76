"""Typed exceptions of the engine. Messages name the bad part (file, line, tag, option) and never carry PHI."""

from __future__ import annotations


class AnonymizerError(Exception):
    """Base of every error this package raises on purpose."""


class ProfileError(AnonymizerError):
    """A profile, option, action or rule is unknown or malformed."""


class InvalidDicomError(AnonymizerError):
    """The input is not DICOM, or is too damaged to anonymize safely."""


class AnonymizationError(AnonymizerError):
    """An instance could not be anonymized; the message says why, by tag number, without values."""


class LinkStoreError(AnonymizerError):
    """The index of links (the state folder's SQLite file, or the shared database) cannot be read or written."""
