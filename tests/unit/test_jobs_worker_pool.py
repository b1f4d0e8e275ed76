"""The engine in spawned worker processes: bytes in, bytes and a value-free outcome out."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file

from orthanc_anonymizer.deid.engine import AnonymizationSettings
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import InstanceTask
from orthanc_anonymizer.server.workers import WorkerPool


def test_spawned_workers_anonymize_and_report_failures_without_values() -> None:
    pool = WorkerPool(2, python="/usr/bin/python3")
    try:
        data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
        task = InstanceTask(AnonymizationSettings(hasher=KeyedHasher(b"worker-test")))
        good, bad = pool.submit(data, task), pool.submit(b"not DICOM at all, Patientname", task)
        outcome = good.result(timeout=120)
        assert outcome.error is None and outcome.residual_clean is True
        ds = dcmread(BytesIO(outcome.data or b""))
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PixelData == dcmread(BytesIO(data)).PixelData
        failure = bad.result(timeout=120)
        assert failure.data is None and failure.error
        assert "Patientname" not in failure.error
        dry = pool.submit(data, InstanceTask(task.settings, dry_run=True)).result(timeout=120)
        assert dry.data is None and any(change["Keyword"] == "PatientName" for change in dry.changes)
    finally:
        pool.shutdown()
