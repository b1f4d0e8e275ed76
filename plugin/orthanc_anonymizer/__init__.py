"""Orthanc Anonymizer: DICOM PS3.15 de-identification, as an engine, a CLI and an Orthanc plugin."""

from __future__ import annotations

__version__ = "0.1.0"
