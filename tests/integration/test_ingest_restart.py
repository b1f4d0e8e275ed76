"""Exactly once across a restart: Orthanc stopped (SIGTERM) or killed (SIGKILL) in the middle of a storescu burst;
after the restart every original it holds has exactly one anonymized copy."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest
from ingest_support import (
    assert_exactly_one_copy_each,
    auto_overrides,
    interleaved,
    originals_of,
    settle,
    storescu_command,
    storescu_environment,
    studies_for,
    wait_for_instances,
)
from study_generator import Patient, write_files

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_restart_in_the_middle_of_a_burst_loses_nothing_and_doubles_nothing(server_factory, tmp_path, stop) -> None:
    # QuietSeconds 0: the copies are made while the originals still arrive (the harder case for exactly-once).
    server = server_factory(f"restart-{stop.name}", overrides=auto_overrides(QuietSeconds=0)).start()
    patients = [Patient(name=f"Restart^Patient{n}", id=f"PID-RESTART-{stop.name}-{n}") for n in range(3)]
    paths = write_files(interleaved(studies_for(patients, series=2, per_series=25)), tmp_path / "burst")
    sender = subprocess.Popen(
        storescu_command(server, paths),
        env=storescu_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Stop Orthanc while instances arrive and a batch of copies is being made.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            int(server.json("/statistics")["CountInstances"]) >= 80 and any((server.state / "jobs").glob("*.json"))
        ):
            time.sleep(0.02)
        assert server.process is not None
        server.process.send_signal(stop)
        try:  # SIGTERM: Orthanc finishes the association and the jobs under way first (seconds; more under load)
            server.process.wait(300)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"Orthanc did not stop within 300 s of {stop.name}:\n{server.log_tail()}") from None
    finally:
        sender.wait(300)
    server.process = None
    restarted = datetime.now(UTC).isoformat()

    server.start()
    originals = originals_of(server, patients)
    wait_for_instances(server, 2 * len(originals))
    settle(server)
    assert_exactly_one_copy_each(server, patients)
    # Whatever the first Orthanc left undone, the restarted one did. (A SIGTERM lets Orthanc 1.10 drain its queue
    # first, so it may have finished every copy itself: then there is nothing left to check here.)
    records = [record for record in server.json("/anonymizer/audit") if record.get("User") == "auto"]
    done_before = sum(1 for record in records if record["Time"] <= restarted)
    if done_before < len(originals):
        assert any(record["Time"] > restarted for record in records)
    assert server.json("/anonymizer/audit/verify")["Valid"] is True
