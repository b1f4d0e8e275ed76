"""The scanner first: while a modality keeps sending, on-ingest anonymization waits; once the originals stop
coming it catches up, each original copied exactly once."""

from __future__ import annotations

import time

import pytest
from ingest_support import assert_exactly_one_copy_each, auto_overrides, copies_by_original, settle, wait_for_instances
from study_generator import Patient, make_study

pytestmark = pytest.mark.integration


def test_copies_wait_until_the_modality_pauses_then_each_original_gets_one(server_factory) -> None:
    # Arrivals 0.2 s apart, far below QuietSeconds: no copy may be made before the last original is in.
    server = server_factory("yield", overrides=auto_overrides(QuietSeconds=6)).start()
    patient = Patient(name="Steady^Sender", id="PID-STEADY-SENDER")
    files = make_study(patient, 1, 12)
    for data in files:
        server.upload(data)
        time.sleep(0.2)
    assert int(server.json("/statistics")["CountInstances"]) == len(files)
    assert not copies_by_original(server), "a copy was made while the originals were still arriving"
    wait_for_instances(server, 2 * len(files), timeout=180)
    settle(server)
    assert_exactly_one_copy_each(server, [patient])
