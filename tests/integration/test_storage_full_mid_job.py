"""Orthanc's storage fills up in the middle of a job (a small tmpfs as StorageDirectory, the plugin's state on it
too, as by default): the job ends as a failure naming the reason, the original is untouched and kept although
InPlace was asked, the copies stored so far are a copy marked incomplete, and a retry once there is room completes
that same copy."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from checks import instance_files
from orthanc_server import OrthancServer
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, to_bytes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
INSTANCES = 12
SIDE = 181  # 181 x 181 x 16 bits: about 64 KiB of pixels per instance


def big_study() -> list[bytes]:
    patient = Patient(name="Diskfull^Ambrosius", id="PID-DISKFULL")
    study, series = generate_uid(), generate_uid()
    files = []
    for number in range(1, INSTANCES + 1):
        ds = make_instance(patient, study, series, 1, number)
        ds.Rows = ds.Columns = SIDE
        ds.PixelData = os.urandom(SIDE * SIDE * 2)
        files.append(to_bytes(ds))
    return files


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_storage_full_mid_job_fails_cleanly_and_keeps_the_original(tmp_path) -> None:
    folder = tmp_path / "diskfull"
    with tmpfs(folder / "storage", "3M") as storage:
        server = OrthancServer(folder, {"IndexDirectory": str(folder / "index"), "Anonymizer": {"Workers": 1}})
        try:
            server.start()
            files = big_study()
            study = server.upload_study(files)
            originals = instance_files(server, "studies", study)
            # Leave room for about four copies (and the job record and audit lines), then fill the rest.
            filler = storage / "filler"
            filler.write_bytes(b"\0" * max(0, free_bytes(storage) - 4 * (SIDE * SIDE * 2 + 6000)))

            job = server.anonymize("studies", study, {"InPlace": True, "Asynchronous": True})["Job"]
            record = server.wait_job(job)

            assert record["State"] == "Failure"
            (result,) = record["Results"]
            stored, failed = result["Instances"], result["Failed"]
            assert 0 < stored < INSTANCES, result
            assert stored + len(failed) == INSTANCES
            assert result["Complete"] is False
            assert all(
                failure["Reason"].startswith(
                    ("cannot store the copy", "cannot link the copy (deleted)", "cannot link the copy (not stored)")
                )
                for failure in failed
            ), failed
            assert result["Deleted"] is False
            assert any("original kept (InPlace)" in error for error in record["Errors"]), record["Errors"]
            # The original: still there, byte for byte.
            assert instance_files(server, "studies", study) == originals
            # The partial copy holds exactly the instances the job says it stored.
            copy = result["Resource"]
            assert len(server.json(f"/studies/{copy}/instances")) == stored
            assert server.get("/system").status_code == 200

            # A disk with no room left at all: nothing is stored, nor the job record, nor its audit line, and the
            # synchronous request is still answered, saying so.
            audited = len(server.json("/anonymizer/audit"))
            (storage / "filler2").write_bytes(b"\0" * free_bytes(storage))
            with contextlib.suppress(OSError):
                (storage / "filler3").write_bytes(b"\0" * 65536)  # the last partial page
            full = server.anonymize("studies", study, {"PatientID": "NO-ROOM"})
            assert full["Instances"] == 0 and full["Complete"] is False and len(full["Failed"]) == INSTANCES
            assert full["Audit"] is None
            assert instance_files(server, "studies", study) == originals
            (storage / "filler2").unlink()
            assert len(server.json("/anonymizer/audit")) == audited
            assert server.json("/anonymizer/audit/verify")["Valid"] is True

            # Room again: the same settings complete the same copy (keyed UIDs), and the audit chain holds.
            filler.unlink()
            answer = server.anonymize("studies", study, {})
            assert answer["Resource"] == copy and answer["Instances"] == INSTANCES and answer["Failed"] == []
            assert answer["Complete"] is True
            assert len(server.json(f"/studies/{copy}/instances")) == INSTANCES
            assert instance_files(server, "studies", study) == originals
            assert server.json("/anonymizer/audit/verify")["Valid"] is True
        finally:
            server.stop()
