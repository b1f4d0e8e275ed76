"""The studies the benchmarks run on, generated: nothing here comes from a real patient.

- :func:`ct_study`: 512x512 16-bit CT-like instances (about 530 KB each) with the header of pydicom's
  ``CT_small.dcm`` test file (a GE scanner's: 258 attributes, 130 of them private), new UIDs per study, series and
  instance, and noise for pixels; 100 to a series, or as many as asked (the single-series case);
- :func:`small_study`: the integration tests' 16x16 instances (a few KB), for the memory and growth cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from study_generator import Patient, make_study, to_bytes  # type: ignore[import-not-found]

CT_ROWS = CT_COLUMNS = 512
SERIES_SIZE = 100


def ct_study(count: int, seed: int = 7, series_size: int = SERIES_SIZE, patient_each: bool = False) -> list[bytes]:
    """``count`` CT-like instances of one made-up patient, ``series_size`` to a series; with ``patient_each``, each
    instance of a made-up patient of its own (a name, an ID and a birth date each), as in a folder of scouts or of
    a screening programme."""
    template_path = get_testdata_file("CT_small.dcm")
    assert template_path is not None, "pydicom's CT_small.dcm test file is missing"
    rng = np.random.default_rng(seed)
    study_uid, frame_uid = generate_uid(), generate_uid()
    series_uid = ""
    files = []
    for number in range(count):
        if number % series_size == 0:
            series_uid = generate_uid()
        ds = dcmread(template_path)
        ds.PatientName = f"Benchperson{number}^Ottokar" if patient_each else "Benchperson^Ottokar"
        ds.PatientID = f"BENCH-CT-{number:05d}" if patient_each else "BENCH-300-CT"
        if patient_each:
            ds.PatientBirthDate = f"19{40 + number % 60:02d}{1 + number % 12:02d}{1 + number % 28:02d}"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = number // series_size + 1
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = number % series_size + 1
        ds.ImagePositionPatient = [-158.0, -179.0, -number * 1.25]
        ds.SliceLocation = -number * 1.25
        ds.Rows, ds.Columns = CT_ROWS, CT_COLUMNS
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelData = rng.integers(0, 4096, CT_ROWS * CT_COLUMNS, dtype=np.uint16).tobytes()
        files.append(to_bytes(ds))
    return files


def small_study(count: int, name: str = "Benchperson^Small") -> list[bytes]:
    """``count`` small CT instances (16x16) of one made-up patient, in series of at most 500."""
    series = max(1, -(-count // 500))
    files: list[bytes] = make_study(
        Patient(name=name, id=f"BENCH-{count}"), series=series, per_series=-(-count // series)
    )
    return files[:count]


def write_folder(files: list[bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(files):
        (folder / f"{number:05d}.dcm").write_bytes(data)
    return folder
