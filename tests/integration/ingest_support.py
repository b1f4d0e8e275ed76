"""What the on-ingest tests share: studies sent interleaved with storescu, and the exactly-once count."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from orthanc_server import OrthancServer
from study_generator import Patient, make_study, write_files

AUTO = "AutoAnonymize"


def auto_overrides(**settings: Any) -> dict[str, Any]:
    """Orthanc overrides with ``Anonymizer.AutoAnonymize`` enabled and ``settings`` in it."""
    stable_age = settings.pop("StableAge", 60)
    return {"StableAge": stable_age, "Anonymizer": {AUTO: {"Enabled": True, **settings}}}


def interleaved(studies: list[list[bytes]]) -> list[bytes]:
    """One instance of each study in turn, as several modalities sending at once would deliver them."""
    files: list[bytes] = []
    for index in range(max(len(study) for study in studies)):
        files.extend(study[index] for study in studies if index < len(study))
    return files


def storescu_command(server: OrthancServer, paths: list[Path], calling_aet: str = "MODALITY1") -> list[str]:
    if shutil.which("storescu") is None:
        pytest.fail("dcmtk's storescu is missing: run `make apt`")
    return ["storescu", "-aet", calling_aet, "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), *map(str, paths)]


def storescu_environment() -> dict[str, str]:
    return {**os.environ, "TCP_NODELAY": "1"}


def send(server: OrthancServer, files: list[bytes], folder: Path, calling_aet: str = "MODALITY1") -> float:
    """Send ``files`` in this order with one storescu association; returns the seconds it took."""
    paths = write_files(files, folder)
    started = time.monotonic()
    subprocess.run(
        storescu_command(server, paths, calling_aet),
        check=True,
        timeout=300,
        env=storescu_environment(),
        capture_output=True,
    )
    return time.monotonic() - started


def originals_of(server: OrthancServer, patients: list[Patient]) -> dict[str, str]:
    """Original instance ID -> its study ID, for the instances Orthanc holds of these patients."""
    found: dict[str, str] = {}
    for patient in patients:
        answer = server.post(
            "/tools/find", {"Level": "Instance", "Query": {"PatientID": patient.id}, "Expand": True}
        ).json()
        for instance in answer:
            found[instance["ID"]] = instance["ParentSeries"]
    series_to_study: dict[str, str] = {}
    for series in set(found.values()):
        response = server.get(f"/series/{series}")
        if response.status_code == 200:  # else deleted since (DeleteOriginal)
            series_to_study[series] = response.json()["ParentStudy"]
    return {instance: series_to_study[series] for instance, series in found.items() if series in series_to_study}


def copies_by_original(server: OrthancServer) -> Counter[str]:
    """For every instance carrying ``AnonymizedFromResource``: how many copies name each original."""
    sources: Counter[str] = Counter()
    for instance in server.json("/instances"):
        response = server.get(f"/instances/{instance}/metadata/AnonymizedFromResource")
        if response.status_code == 200:
            sources[response.text] += 1
    return sources


def wait_for_instances(server: OrthancServer, expected: int, timeout: float = 300.0) -> float:
    """Wait until Orthanc holds ``expected`` instances; returns when it was seen (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = int(server.json("/statistics")["CountInstances"])
        if count >= expected:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"only {server.json('/statistics')['CountInstances']} of {expected} instances in time")


def settle(server: OrthancServer, seconds: float = 1.5) -> int:
    """Wait until the instance count has not moved for ``seconds``; returns it."""
    count = int(server.json("/statistics")["CountInstances"])
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < seconds:
        time.sleep(0.1)
        now = int(server.json("/statistics")["CountInstances"])
        if now != count:
            count, quiet_since = now, time.monotonic()
    return count


def assert_exactly_one_copy_each(server: OrthancServer, patients: list[Patient], unrelated: int = 0) -> dict[str, str]:
    """Every original of these patients has exactly one copy; each original study became one anonymized study with
    as many instances; Orthanc holds nothing else but ``unrelated`` instances. Returns original study -> copy."""
    originals = originals_of(server, patients)
    assert originals, "no original stored"
    copies = copies_by_original(server)
    missing = [instance for instance in originals if copies[instance] == 0]
    doubled = {instance: count for instance, count in copies.items() if count > 1}
    assert not missing, f"{len(missing)} of {len(originals)} originals have no copy"
    assert not doubled, f"originals with more than one copy: {doubled}"
    assert set(copies) <= set(originals), "copies of instances that are not originals of these patients"
    total = int(server.json("/statistics")["CountInstances"])
    assert total == 2 * len(originals) + unrelated, (
        "an instance that is neither an original nor its copy (a copy's copy?)"
    )
    studies: dict[str, str] = {}
    for study in set(originals.values()):
        links = server.json(f"/anonymizer/studies/{study}/links")
        assert len(links["Copies"]) == 1, f"study {study}: {len(links['Copies'])} anonymized studies"
        copy = links["Copies"][0]
        originals_count = sum(1 for value in originals.values() if value == study)
        assert int(server.json(f"/studies/{copy}/statistics")["CountInstances"]) == originals_count
        assert server.get(f"/studies/{copy}/metadata/AnonymizedFromResource").text == study
        studies[study] = copy
    return studies


def studies_for(patients: list[Patient], series: int, per_series: int) -> list[list[bytes]]:
    return [make_study(patient, series=series, per_series=per_series) for patient in patients]
