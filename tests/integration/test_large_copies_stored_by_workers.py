"""Copies of 64 KiB and more are stored by the worker that made them (``workers.WORKER_STORES_FROM``), not by the
job's thread: the same guarantees, with a real Orthanc. The other integration tests' 16x16 images take the job
thread's path."""

from __future__ import annotations

from array import array

import pytest
from checks import assert_anonymized_copy, instance_files, read
from ingest_support import assert_exactly_one_copy_each, auto_overrides, settle, wait_for_instances
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, to_bytes

from orthanc_anonymizer.server.workers import WORKER_STORES_FROM

pytestmark = pytest.mark.integration

SIDE = 256  # 256 x 256 x 16 bits: 128 KiB of pixel data


def large_study(patient: Patient, series: int = 2, per_series: int = 2, leaky: int | None = None) -> list[bytes]:
    study = generate_uid()
    files = []
    for series_number in range(1, series + 1):
        series_uid = generate_uid()
        for number in range(1, per_series + 1):
            extra = {"Manufacturer": f"{patient.name.split('^')[0]} Imaging"} if number == leaky else {}
            ds = make_instance(patient, study, series_uid, series_number, number, **extra)
            ds.Rows = ds.Columns = SIDE
            ds.PixelData = array("H", [(value * number) % 65536 for value in range(SIDE * SIDE)]).tobytes()
            files.append(to_bytes(ds))
    assert all(len(data) > WORKER_STORES_FROM for data in files)
    return files


def test_a_study_of_large_images_is_copied_linked_and_checked(orthanc) -> None:
    study = orthanc.upload_study(large_study(Patient(name="Largeimage^Philippa", id="PID-LARGE-1")))
    originals = instance_files(orthanc, "studies", study)
    answer = orthanc.anonymize("studies", study)
    copies = assert_anonymized_copy(orthanc, "studies", study, originals, answer)
    assert all(len(data) > WORKER_STORES_FROM for data in copies.values())
    # The pixel data came through untouched.
    by_number = {read(data).InstanceNumber: read(data).PixelData for data in originals.values()}
    assert all(read(data).PixelData == by_number[read(data).InstanceNumber] for data in copies.values())


def test_in_place_with_a_leaking_large_image_keeps_the_original_and_stores_the_rest(orthanc) -> None:
    patient = Patient(name="Leakington^Cordelia", id="PID-LARGE-LEAK")
    study = orthanc.upload_study(large_study(patient, series=1, per_series=3, leaky=2))
    originals = instance_files(orthanc, "studies", study)
    answer = orthanc.anonymize("studies", study, {"InPlace": True})
    (failed,) = answer["Failed"]
    assert "residual PHI" in failed["Reason"] and "Leakington" not in failed["Reason"]
    assert answer["Instances"] == 2 and answer["Deleted"] is False
    assert instance_files(orthanc, "studies", study) == originals  # every original kept, byte for byte
    copies = instance_files(orthanc, "studies", answer["Resource"])
    assert len(copies) == 2 and all(b"Leakington" not in data for data in copies.values())


def test_on_ingest_each_large_original_gets_exactly_one_copy(server_factory) -> None:
    """The worker links each copy before storing it: ingest never takes one for an original (no copy of a copy)."""
    server = server_factory("large-ingest", overrides=auto_overrides()).start()
    patients = [Patient(name=f"Ingested^Large{n}", id=f"PID-LARGE-IN-{n}") for n in range(2)]
    for patient in patients:
        for data in large_study(patient, series=1, per_series=3):
            server.upload(data)
    wait_for_instances(server, 12)
    assert settle(server) == 12
    studies = assert_exactly_one_copy_each(server, patients)
    assert len(studies) == 2
