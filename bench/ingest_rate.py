"""On-ingest anonymization: how much it slows a storescu burst, and how far the copies lag behind.

    .venv/bin/python bench/ingest_rate.py [--instances 300] [--runs 3]

For each run, two fresh Orthancs (orthanc-config/ with the plugin): one without AutoAnonymize, one with it (basic
profile). The same burst (5 studies, interleaved, small generated CT images) is sent with one storescu association
(TCP_NODELAY=1 for both ends). Printed: the ingest rate of each (instances/s of the storescu run), their ratio, the
delay between the end of the burst (the last original stored) and the last copy stored, and that delay over the time
the same copies take on the same Orthanc once it is idle: the copies deleted, one ``POST /anonymizer/batch`` job of
the burst's studies, timed from the request to the last copy stored.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from ingest_support import auto_overrides, interleaved, send, settle, studies_for
from orthanc_server import OrthancServer
from study_generator import Patient

PATIENT_ID = "PID-BENCH-INGEST-"


class Burst(NamedTuple):
    """What one burst into one fresh Orthanc measured."""

    rate: float
    """Instances per second of the storescu run."""
    lag: float | None = None
    """With AutoAnonymize: seconds from the end of the burst to the last copy stored."""
    idle: float | None = None
    """With AutoAnonymize: seconds the same copies take on the same Orthanc when nothing arrives (one batch job)."""


def one_run(folder: Path, instances: int, auto: bool) -> Burst:
    """The burst into one fresh Orthanc, with or without AutoAnonymize."""
    server = OrthancServer(folder, overrides=auto_overrides() if auto else None).start()
    try:
        time.sleep(3.0)  # workers warmed up, ingest loop reached Orthanc: measure the steady state
        patients = [Patient(name=f"Bench^Ingest{n}", id=f"{PATIENT_ID}{n}") for n in range(5)]
        per_series = max(1, instances // 15)
        burst = interleaved(studies_for(patients, series=3, per_series=per_series))
        seconds = send(server, burst, folder / "burst")
        ended = time.monotonic()
        rate = len(burst) / seconds
        if not auto:
            return Burst(rate)
        lag = stored_by(server, 2 * len(burst), ended + 300) - ended
        return Burst(rate, lag, idle_copies(server, len(burst)))
    finally:
        server.stop()


def stored_by(server: OrthancServer, expected: int, deadline: float) -> float:
    """When (monotonic seconds) Orthanc was first seen holding ``expected`` instances, polled every 20 ms."""
    while int(server.json("/statistics")["CountInstances"]) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the copies did not all arrive: {server.json('/statistics')['CountInstances']}")
        time.sleep(0.02)
    return time.monotonic()


def idle_copies(server: OrthancServer, originals: int) -> float:
    """Seconds the plugin takes, with nothing arriving, to make again the copies AutoAnonymize made of the burst:
    once the on-ingest work has settled, the copies are deleted and one batch job over the burst's studies runs
    (the same profile), timed from its request to the last copy stored; the job must end in success."""
    assert settle(server) == 2 * originals, "the on-ingest copies are not exactly one per original"
    found = server.post("/tools/find", {"Level": "Study", "Query": {"PatientID": f"{PATIENT_ID}*"}}).json()
    studies = [str(study) for study in found]
    for study in server.json("/studies"):
        if study not in studies:
            server.session.delete(f"{server.url}/studies/{study}").raise_for_status()
    assert int(server.json("/statistics")["CountInstances"]) == originals, "copies left after deleting them"
    started = time.monotonic()
    response = server.post("/anonymizer/batch", {"Level": "Study", "Resources": studies})
    assert response.status_code == 200, response.text
    seconds = stored_by(server, 2 * originals, started + 300) - started
    record = server.wait_job(str(response.json()["Job"]))
    assert record["State"] == "Success", record.get("Errors")
    assert settle(server, 0.5) == 2 * originals, "the batch did not make exactly one copy per original"
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    plain: list[float] = []
    auto: list[float] = []
    lags: list[float] = []
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as temporary:
        for run in range(arguments.runs):
            plain.append(one_run(Path(temporary) / f"plain-{run}", arguments.instances, auto=False).rate)
            burst = one_run(Path(temporary) / f"auto-{run}", arguments.instances, auto=True)
            assert burst.lag is not None and burst.idle is not None
            auto.append(burst.rate)
            lags.append(burst.lag)
            ratios.append(burst.lag / burst.idle)
            print(
                f"run {run + 1}: without {plain[-1]:.0f}/s, with {auto[-1]:.0f}/s, last copy {burst.lag:.2f} s after "
                f"(the same copies on the idle Orthanc: {burst.idle:.2f} s)"
            )
    without, with_auto = statistics.median(plain), statistics.median(auto)
    print(f"median ingest rate without AutoAnonymize: {without:.0f} instances/s")
    print(f"median ingest rate with AutoAnonymize:    {with_auto:.0f} instances/s (ratio {with_auto / without:.2f})")
    print(f"median delay from the last original stored to its last copy stored: {statistics.median(lags):.2f} s")
    print(
        f"median of that delay over the time the same copies take on the idle Orthanc: {statistics.median(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
