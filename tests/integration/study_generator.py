"""Generated studies with identifying values: N series of M small CT images of one made-up patient."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


@dataclass(frozen=True)
class Patient:
    name: str = "Testperson^Vincenzo"
    id: str = "PID-7731-4420"
    birth_date: str = "19610407"
    institution: str = "Saint Bartholomew Teaching Hospital"
    physician: str = "Cardiologist^Evangeline"


def make_instance(
    patient: Patient, study_uid: str, series_uid: str, series_number: int, instance_number: int, **extra: str
) -> Dataset:
    """One small CT image carrying the patient's identifying values in the usual places and a nested one."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = patient.name
    ds.PatientID = patient.id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = "M"
    ds.InstitutionName = patient.institution
    ds.ReferringPhysicianName = patient.physician
    ds.AccessionNumber = "ACC20240917"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240917"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101530"
    ds.StudyID = "S4420"
    ds.StudyDescription = "CT chest for " + patient.name.replace("^", " ")
    ds.SeriesDescription = f"series {series_number}"
    ds.Modality = "CT"
    ds.Manufacturer = "Generic Scanners"
    ds.StationName = "CTSTATION07"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = CTImageStorage
    referenced.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageSequence = Sequence([referenced])
    series_reference = Dataset()
    series_reference.SeriesInstanceUID = series_uid
    ds.ReferencedSeriesSequence = Sequence([series_reference])
    requested = Dataset()
    requested.RequestingPhysician = patient.physician
    requested.AccessionNumber = "ACC20240917"
    ds.RequestAttributesSequence = Sequence([requested])
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = array("H", [(value * (instance_number + 1)) % 65536 for value in range(256)]).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_study(patient: Patient, series: int = 2, per_series: int = 3) -> list[bytes]:
    """A study of ``series`` x ``per_series`` instances of ``patient``, as DICOM files in memory."""
    study_uid = generate_uid()
    files = []
    for series_number in range(1, series + 1):
        series_uid = generate_uid()
        for instance_number in range(1, per_series + 1):
            files.append(to_bytes(make_instance(patient, study_uid, series_uid, series_number, instance_number)))
    return files


def write_files(files: list[bytes], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, data in enumerate(files):
        path = folder / f"{number:05d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths
