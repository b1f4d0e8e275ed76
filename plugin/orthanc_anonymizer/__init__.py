"""Orthanc Anonymizer: DICOM PS3.15 de-identification, as an engine, a CLI and an Orthanc plugin.

The Python API (:mod:`.anonymizer`): :class:`Anonymizer`, its :class:`InvalidArgument`, and the pipeline's
:class:`~.pipeline.InstanceOutcome` and :class:`~.pipeline.Failure` (loaded when first used: pydicom and the engine
are not imported with the package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from orthanc_anonymizer.anonymizer import Anonymizer, InvalidArgument  # after __version__, which it reads

if TYPE_CHECKING:
    from orthanc_anonymizer.pipeline import Failure, InstanceOutcome

__all__ = ["Anonymizer", "Failure", "InstanceOutcome", "InvalidArgument", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Failure", "InstanceOutcome"):
        from orthanc_anonymizer import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'orthanc_anonymizer' has no attribute {name!r}")
