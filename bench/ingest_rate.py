"""On-ingest anonymization: how much it slows a storescu burst, and how far the copies lag behind.

    .venv/bin/python bench/ingest_rate.py [--instances 300] [--runs 3]

For each run, two fresh Orthancs (orthanc-config/ with the plugin): one without AutoAnonymize, one with it (basic
profile). The same burst (5 studies, interleaved, small generated CT images) is sent with one storescu association
(TCP_NODELAY=1 for both ends). Printed: the ingest rate of each (instances/s of the storescu run), their ratio, and
the delay between the end of the burst (the last original stored) and the last copy stored.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from ingest_support import auto_overrides, interleaved, send, studies_for
from orthanc_server import OrthancServer
from study_generator import Patient


def one_run(folder: Path, instances: int, auto: bool) -> tuple[float, float | None]:
    """(instances per second of the burst, seconds from its end to the last copy) for one fresh Orthanc."""
    server = OrthancServer(folder, overrides=auto_overrides() if auto else None).start()
    try:
        time.sleep(3.0)  # workers warmed up, ingest loop reached Orthanc: measure the steady state
        patients = [Patient(name=f"Bench^Ingest{n}", id=f"PID-BENCH-INGEST-{n}") for n in range(5)]
        per_series = max(1, instances // 15)
        burst = interleaved(studies_for(patients, series=3, per_series=per_series))
        seconds = send(server, burst, folder / "burst")
        ended = time.monotonic()
        lag = None
        if auto:
            deadline = ended + 300
            while int(server.json("/statistics")["CountInstances"]) < 2 * len(burst):
                if time.monotonic() > deadline:
                    raise RuntimeError("the copies did not all arrive within 300 s")
                time.sleep(0.02)
            lag = time.monotonic() - ended
        return len(burst) / seconds, lag
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    plain: list[float] = []
    auto: list[float] = []
    lags: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as temporary:
        for run in range(arguments.runs):
            rate, _ = one_run(Path(temporary) / f"plain-{run}", arguments.instances, auto=False)
            plain.append(rate)
            rate, lag = one_run(Path(temporary) / f"auto-{run}", arguments.instances, auto=True)
            auto.append(rate)
            assert lag is not None
            lags.append(lag)
            print(f"run {run + 1}: without {plain[-1]:.0f}/s, with {auto[-1]:.0f}/s, last copy {lag:.2f} s after")
    without, with_auto = statistics.median(plain), statistics.median(auto)
    print(f"median ingest rate without AutoAnonymize: {without:.0f} instances/s")
    print(f"median ingest rate with AutoAnonymize:    {with_auto:.0f} instances/s (ratio {with_auto / without:.2f})")
    print(f"median delay from the last original stored to its last copy stored: {statistics.median(lags):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
