"""The engine: de-identify one DICOM dataset as PS3.15 Annex E says. Pure pydicom; knows nothing of Orthanc.

``anonymize_dataset`` changes a :class:`~pydicom.dataset.Dataset` in place and returns a report of every change;
``anonymize_bytes`` does the same for the bytes of a DICOM file (what a worker process receives and returns).

The work is done in :mod:`.reading`, :mod:`.walk`, :mod:`.deidentification_method` and :mod:`.writing` (see the
package's docstring for every module); the names callers use are importable from here.
"""

from __future__ import annotations

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.deidentification_method import WEAKENED_CODE, add_deidentification_attributes
from orthanc_anonymizer.deid.elements import element_text
from orthanc_anonymizer.deid.pixels import clean_pixel_data
from orthanc_anonymizer.deid.profiles import Option
from orthanc_anonymizer.deid.reading import DicomInstance, read_dataset, read_instance, sequence_in_unknown
from orthanc_anonymizer.deid.report import AnonymizationReport, Change
from orthanc_anonymizer.deid.settings import AnonymizationSettings
from orthanc_anonymizer.deid.values import NUMBER_FORMATS, number_bytes
from orthanc_anonymizer.deid.walk import ItemCleaning, _Walker
from orthanc_anonymizer.deid.writing import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    OUTPUT_PREAMBLE,
    write_dataset,
)
from orthanc_anonymizer.errors import AnonymizationError
from orthanc_anonymizer.logs import strip_values

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "NUMBER_FORMATS",
    "OUTPUT_PREAMBLE",
    "WEAKENED_CODE",
    "AnonymizationReport",
    "AnonymizationSettings",
    "Change",
    "DicomInstance",
    "anonymize_bytes",
    "anonymize_dataset",
    "anonymize_instance_data",
    "number_bytes",
    "read_dataset",
    "read_instance",
    "sequence_in_unknown",
    "write_dataset",
]


def anonymize_dataset(
    dataset: Dataset, settings: AnonymizationSettings, *, record_changes: bool = True
) -> AnonymizationReport:
    """De-identify ``dataset`` in place (file meta included) and report what was done; without
    ``record_changes`` the report counts the changes but does not list them (when nobody reads them).

    Pixel data is decoded only under CleanPixelData, for instances that need it (:mod:`.pixels`). Raises
    :class:`AnonymizationError` (naming tags, not values) when the dataset cannot be anonymized safely.
    """
    try:
        walker = _Walker(dataset, settings, record_changes)
        if Option.CleanPixelData in settings.profile.options:
            _clean_pixels(dataset, settings, walker)
        # Always: under D too, the items of a kept sequence (a report's Content Sequence) are cleaned of them.
        walker.collect_identifying(dataset)
        walker.process(dataset, "", (), ItemCleaning.TABLE)
        if settings.profile.age_cap is not None:
            walker.cap_age(dataset, settings.profile.age_cap)
        walker.set_patient_identity(dataset)
        add_deidentification_attributes(dataset, settings.profile, settings.patient_name, settings.patient_id)
        walker.process_file_meta(dataset)
    except AnonymizationError:
        raise
    except Exception as error:
        # pydicom converts values lazily, so a damaged value surfaces here; its message may quote the value.
        raise AnonymizationError(f"damaged attribute ({strip_values(str(error))}): {type(error).__name__}") from None
    report = walker.report
    report.study_instance_uid = element_text(dataset.get(0x0020000D))
    report.series_instance_uid = element_text(dataset.get(0x0020000E))
    report.sop_instance_uid = element_text(dataset.get(0x00080018))
    return report


def _clean_pixels(dataset: Dataset, settings: AnonymizationSettings, walker: _Walker) -> None:
    """PS3.15 E.3.1, before the walk (the redaction rules select by attributes the walk may remove)."""
    outcome = clean_pixel_data(dataset, settings.profile, settings.pixels)
    walker.report.pixel_regions.extend(outcome.regions)
    walker.report.warnings.extend(outcome.warnings)
    for tag in outcome.changed_tags:
        walker.record("", tag, keyword=keyword_for_tag(tag), rule=Option.CleanPixelData.value, action="C", changed=True)


def anonymize_bytes(data: bytes, settings: AnonymizationSettings) -> tuple[bytes, AnonymizationReport]:
    """De-identify the DICOM file ``data``; the pixel data and its encoding pass through untouched unless
    CleanPixelData cleans them.

    Raises :class:`InvalidDicomError` when ``data`` is not DICOM, :class:`AnonymizationError` when it cannot be
    anonymized safely. Runs in any process: bytes and picklable settings in, bytes and a report out.
    """
    instance, report = anonymize_instance_data(data, settings)
    return instance.output_bytes(), report


def anonymize_instance_data(
    data: bytes, settings: AnonymizationSettings, *, record_changes: bool = True
) -> tuple[DicomInstance, AnonymizationReport]:
    """:func:`anonymize_bytes`, leaving the output in pieces (:meth:`DicomInstance.output_parts`) for the caller
    to write without joining them."""
    instance = read_instance(data, settings.profile)
    return instance, anonymize_dataset(instance.dataset, settings, record_changes=record_changes)
