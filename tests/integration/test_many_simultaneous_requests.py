"""Many simultaneous requests: every one answered, no deadlock, and Orthanc keeps answering meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from study_generator import Patient, make_study, write_files
from test_anonymize_study_received_over_dicom import storescu

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


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

    def watch_system() -> None:
        while not stop.is_set():
            started = time.monotonic()
            requests.get(orthanc.url + "/system", timeout=60).raise_for_status()
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_system)
    watcher.start()
    incoming = make_study(Patient(name="Ingest^During", id="PID-CONC-INGEST"), 2, 5)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(len(calls) + 1) as executor:
            sender = executor.submit(storescu, orthanc, write_files(incoming, tmp_path / "incoming"))
            results = list(executor.map(lambda c: call(*c), calls))
            sender.result(timeout=180)
    finally:
        stop.set()
        watcher.join(60)
    elapsed = time.monotonic() - started

    assert [(path, status) for path, status, _ in results if status != 200] == []
    jobs = [answer["Job"] for _, _, answer in results if isinstance(answer, dict) and "Job" in answer]
    assert len(jobs) == 8
    for job in jobs:
        assert orthanc.wait_job(job)["State"] == "Success"
    for _, _, answer in results:
        if isinstance(answer, dict) and "Resource" in answer:
            assert answer["Instances"] == 4 and answer["Failed"] == []
    assert orthanc.json("/anonymizer/audit/verify")["Valid"] is True
    assert max(latencies) < 5.0, f"/system took {max(latencies):.1f} s during the burst"
    print(f"{len(calls)} requests + 10 instances over DICOM in {elapsed:.1f} s; /system max {max(latencies):.2f} s")
