"""Many simultaneous requests: every one answered, no deadlock, Orthanc keeps answering meanwhile, and its memory
(with the plugin's workers) does not grow from one such burst to the next."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from study_generator import Patient, make_study, write_files
from test_anonymize_study_received_over_dicom import storescu

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MIB = 1024 * 1024


def resident_bytes(pid: int) -> int:
    """RSS of ``pid`` and its child processes (the plugin's workers), in bytes; 0 for a process gone meanwhile."""
    total = 0
    for one in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    return total


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def test_simultaneous_anonymizations_dry_runs_links_and_ingest(orthanc, tmp_path) -> None:
    studies = [
        orthanc.upload_study(make_study(Patient(name=f"Concurrent^Person{n}", id=f"PID-CONC-{n}"), 2, 2))
        for n in range(8)
    ]
    calls = []
    for n, study in enumerate(studies):
        calls.append(("POST", f"/anonymizer/studies/{study}", {}))
        calls.append(("POST", f"/anonymizer/studies/{study}", {"DryRun": True}))
        calls.append(("POST", f"/anonymizer/studies/{study}", {"Asynchronous": True, "PatientID": f"ASYNC-{n}"}))
        calls.append(("GET", f"/anonymizer/studies/{study}/links", None))
    calls += [("GET", "/anonymizer/profiles", None), ("GET", "/anonymizer/audit?limit=5", None)] * 4

    def call(method: str, path: str, body: object) -> tuple[str, int, object]:
        response = requests.request(method, orthanc.url + path, json=body, timeout=180)
        return path, response.status_code, response.json()

    stop = threading.Event()
    latencies: list[float] = []
    peaks: list[int] = []  # per burst: the highest RSS of Orthanc with its workers

    def watch() -> None:
        while not stop.is_set():
            started = time.monotonic()
            requests.get(orthanc.url + "/system", timeout=60).raise_for_status()
            latencies.append(time.monotonic() - started)
            peaks[-1] = max(peaks[-1], resident_bytes(orthanc.process.pid))
            time.sleep(0.05)

    def burst(number: int) -> tuple[list[tuple[str, int, object]], float]:
        """The 40 calls at once, while a study of 10 instances arrives over DICOM."""
        peaks.append(resident_bytes(orthanc.process.pid))
        incoming = make_study(Patient(name="Ingest^During", id=f"PID-CONC-INGEST-{number}"), 2, 5)
        started = time.monotonic()
        with ThreadPoolExecutor(len(calls) + 1) as executor:
            sender = executor.submit(storescu, orthanc, write_files(incoming, tmp_path / f"incoming-{number}"))
            results = list(executor.map(lambda c: call(*c), calls))
            sender.result(timeout=180)
        return results, time.monotonic() - started

    watcher = threading.Thread(target=watch)
    peaks.append(0)
    watcher.start()
    rounds = []
    try:
        for number in range(3):
            results, elapsed = burst(number)
            rounds.append(elapsed)
            assert [(path, status) for path, status, _ in results if status != 200] == []
            jobs = [answer["Job"] for _, _, answer in results if isinstance(answer, dict) and "Job" in answer]
            assert len(jobs) == 8
            for job in jobs:
                assert orthanc.wait_job(job)["State"] == "Success"
            for _, _, answer in results:
                if isinstance(answer, dict) and "Resource" in answer:
                    assert answer["Instances"] == 4 and answer["Failed"] == []
    finally:
        stop.set()
        watcher.join(60)

    assert orthanc.json("/anonymizer/audit/verify")["Valid"] is True
    # Served while the bursts run: a blocked or deadlocked HTTP server answers only once they are over, or never. (How
    # fast it answers is for the bench: 0.05 s at most on a quiet machine, seconds when the machine is loaded.)
    assert max(latencies) < 30.0, f"/system took {max(latencies):.1f} s during the bursts"
    first, last = peaks[1] / MIB, peaks[-1] / MIB
    # Bounded: the same load again costs no more memory (a leak per request or job would add up burst by burst).
    assert last <= first + 25, f"peak RSS of Orthanc with its workers grew from {first:.0f} to {last:.0f} MiB"
    print(
        f"{len(calls)} requests + 10 instances over DICOM, 3 times: {', '.join(f'{s:.1f}' for s in rounds)} s; "
        f"/system max {max(latencies):.2f} s; peak RSS with workers {first:.0f}, "
        f"{peaks[2] / MIB:.0f}, {last:.0f} MiB"
    )
