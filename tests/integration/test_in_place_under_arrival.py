"""InPlace deletes only the original instances whose copies are stored and verified, never a resource as a whole:
instances that arrive while the job runs survive, and the answer and the audit trail count them.

The jobs are paced on conditions the tests observe (the plugin's test instrumentation holds a job at a named point
until the test releases it: ``jobs.hold_at_files``), never on speed: the arrivals are stored while the job holds
right after listing the resource, and Orthanc is killed while the job holds between two deletions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from checks import instance_files, metadata, read
from ingest_support import auto_overrides, send
from orthanc_server import OrthancServer
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, to_bytes

pytestmark = pytest.mark.integration
HOLD = "ANONYMIZER_TEST_HOLD_DIRECTORY"
ARRIVED = "arrived after the job listed the resource: this job made no copy of them"


class Holds:
    """The test's side of ``jobs.hold_at_files``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def ask(self, point: str) -> None:
        (self.directory / f"hold-{point}").touch()

    def clear(self) -> None:
        for path in self.directory.glob("hold-*"):
            path.unlink()

    def reached(self, job: str, point: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.directory / f"{job}.{point}").exists():
            assert time.monotonic() < deadline, f"job {job} never reached {point}"
            time.sleep(0.05)

    def release(self, job: str, point: str) -> None:
        (self.directory / f"{job}.{point}.go").touch()


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, Holds]]:
    folder = tmp_path_factory.mktemp("in-place-arrival")
    holds = Holds(folder / "holds")
    server = OrthancServer(folder / "orthanc", environment={HOLD: str(holds.directory)}).start()
    yield server, holds
    server.stop()


def _series(patient: Patient, study: str, series: str, number: int, first: int, count: int) -> list[bytes]:
    return [to_bytes(make_instance(patient, study, series, number, first + n)) for n in range(count)]


def _arrivals(level: str, patient: Patient, study: str, series: str) -> list[bytes]:
    """What a modality still sending adds to the resource being anonymized: more of the same series (every level),
    a new series of the same study (study, patient) and a new study of the same patient (patient)."""
    files = _series(patient, study, series, 1, 100, 3)
    if level in ("studies", "patients"):
        files += _series(patient, study, generate_uid(), 2, 1, 2)
    if level == "patients":
        files += _series(patient, generate_uid(), generate_uid(), 1, 1, 2)
    return files


def _deliver(server: OrthancServer, files: list[bytes], transport: str, folder: Path) -> None:
    if transport == "rest":
        for data in files:
            server.upload(data)
    else:
        send(server, files, folder)  # storescu returns once Orthanc has answered every C-STORE: stored


def _resource_of(server: OrthancServer, level: str, instance: str) -> str:
    answer = server.json(f"/instances/{instance}")
    if level == "series":
        return str(answer["ParentSeries"])
    study = server.json(f"/series/{answer['ParentSeries']}")["ParentStudy"]
    return str(study if level == "studies" else server.json(f"/studies/{study}")["ParentPatient"])


@pytest.mark.parametrize("transport", ["rest", "dicom"])
@pytest.mark.parametrize("level", ["patients", "studies", "series"])
def test_instances_arriving_during_an_in_place_job_survive(held, tmp_path, level, transport) -> None:
    server, holds = held
    patient = Patient(name=f"Arriving^Hortensia{level}{transport}", id=f"PID-ARRIVE-{level}-{transport}")
    study, series = generate_uid(), generate_uid()
    first = [server.upload(data)["ID"] for data in _series(patient, study, series, 1, 1, 4)]
    resource = _resource_of(server, level, first[0])
    arrivals = _arrivals(level, patient, study, series)

    holds.ask("listed")
    try:
        job = server.anonymize(level, resource, {"InPlace": True, "Asynchronous": True})["Job"]
        holds.reached(job, "listed")
        _deliver(server, arrivals, transport, tmp_path)
    finally:
        holds.clear()
    arrived = {oid: data for oid, data in instance_files(server, level, resource).items() if oid not in first}
    assert len(arrived) == len(arrivals)  # stored while the job held, after it listed the resource
    holds.release(job, "listed")
    record = server.wait_job(job)

    assert record["State"] == "Success", record["Errors"]
    (result,) = record["Results"]
    # What the job listed is copied, verified and deleted; what arrived since is kept, byte for byte, and said.
    assert result["Instances"] == len(first) and result["Complete"] is True
    assert result["OriginalsDeleted"] == len(first)
    assert result["OriginalsKept"] == len(arrivals)
    assert result["OriginalsKeptBecause"] == [{"Instances": len(arrivals), "Reason": ARRIVED}]
    assert result["Deleted"] is False  # the resource is still there: it holds the arrivals
    for original in first:
        assert server.get(f"/instances/{original}").status_code == 404
    assert instance_files(server, level, resource) == arrived
    copies = instance_files(server, level, result["Resource"])
    assert len(copies) == len(first)
    assert {metadata(server, "instances", copy, "AnonymizedFromResource") for copy in copies} == set(first)
    assert all(patient.id.encode() not in data and b"Hortensia" not in data for data in copies.values())
    audit = next(entry for entry in server.json("/anonymizer/audit") if entry.get("Sequence") == result["Audit"])
    assert audit["OriginalsDeleted"] == len(first) and audit["OriginalsKept"] == len(arrivals)
    assert audit["OriginalsKeptBecause"] == result["OriginalsKeptBecause"]
    assert audit["DeletedOriginal"] is False


def test_without_arrivals_the_original_resource_is_gone(held) -> None:
    server, _ = held
    patient = Patient(name="Quiet^Leopoldina", id="PID-ARRIVE-NONE")
    first = [server.upload(data)["ID"] for data in _series(patient, generate_uid(), generate_uid(), 1, 1, 3)]
    study = _resource_of(server, "studies", first[0])
    answer = server.anonymize("studies", study, {"InPlace": True})
    assert answer["Deleted"] is True and answer["OriginalsDeleted"] == 3 and answer["OriginalsKept"] == 0
    assert answer["OriginalsKeptBecause"] == []
    assert server.get(f"/studies/{study}").status_code == 404


@pytest.mark.parametrize("level", ["patients", "studies", "series"])
def test_orthanc_killed_while_in_place_deletes_loses_no_original(server_factory, tmp_path, level) -> None:
    holds = Holds(tmp_path / "holds")
    server = server_factory("killed-deleting", environment={HOLD: str(holds.directory)}).start()
    patient = Patient(name="Powercut^Ermenegilda", id=f"PID-ARRIVE-KILL-{level}")
    study, series = generate_uid(), generate_uid()
    files = _series(patient, study, series, 1, 1, 8)
    first = [server.upload(data)["ID"] for data in files]
    originals = {oid: data for oid, data in zip(first, files, strict=True)}
    resource = _resource_of(server, level, first[0])
    arrivals = _arrivals(level, patient, study, series)

    holds.ask("listed")
    holds.ask("deleting-3")
    job = server.anonymize(level, resource, {"InPlace": True, "Asynchronous": True})["Job"]
    holds.reached(job, "listed")
    send(server, arrivals, tmp_path / "arrivals")
    arrived = {oid: data for oid, data in instance_files(server, level, resource).items() if oid not in first}
    assert len(arrived) == len(arrivals)
    holds.release(job, "listed")
    holds.reached(job, "deleting-3")  # every copy stored and verified, three originals deleted
    assert server.process is not None
    server.process.kill()  # no chance to clean up: a power cut
    server.process.wait(30)
    server.process = None
    holds.clear()
    server.start()

    record = server.json(f"/anonymizer/jobs/{job}")
    assert record["State"] == "Failure" and any(error.startswith("interrupted") for error in record["Errors"])
    # Every original either still exists, byte for byte, or has a stored copy linked to it that is anonymized.
    copy_of: dict[str, bytes] = {}
    for copy in server.json("/instances"):
        source = metadata(server, "instances", copy, "AnonymizedFromResource")
        if source is not None:
            copy_of[source] = server.get(f"/instances/{copy}/file").content
    still = instance_files(server, level, resource)
    deleted = [oid for oid in first if oid not in still]
    assert len(deleted) == 3
    for original in first:
        if original in still:
            assert still[original] == originals[original]
        else:
            assert original in copy_of
            copy = read(copy_of[original])
            assert copy.PatientIdentityRemoved == "YES" and str(copy.PatientID) != patient.id
            assert copy.InstanceNumber == read(originals[original]).InstanceNumber
    for oid, data in arrived.items():
        assert still[oid] == data
    assert server.json("/anonymizer/audit/verify")["Valid"] is True


def test_with_auto_anonymize_on_the_arrivals_get_their_own_copies(server_factory, tmp_path) -> None:
    holds = Holds(tmp_path / "holds")
    server = server_factory(
        "auto-arrival", overrides=auto_overrides(), environment={HOLD: str(holds.directory)}
    ).start()
    patient = Patient(name="Arriving^Eulalia", id="PID-ARRIVE-AUTO")
    study, series = generate_uid(), generate_uid()
    first = [server.upload(data)["ID"] for data in _series(patient, study, series, 1, 1, 3)]
    study_id = _resource_of(server, "studies", first[0])
    # On-ingest anonymization runs jobs too: let it copy these first, so that only the InPlace job is held.
    assert _wait_for_copies(server, set(first)) == set(first)
    holds.ask("listed")
    job = server.anonymize("studies", study_id, {"InPlace": True, "Asynchronous": True})["Job"]
    holds.reached(job, "listed")
    send(server, _arrivals("studies", patient, study, series), tmp_path / "arrivals")
    arrived = [oid for oid in instance_files(server, "studies", study_id) if oid not in first]
    holds.clear()  # releases the InPlace job, and the on-ingest jobs that reached the point meanwhile
    (result,) = server.wait_job(job)["Results"]
    assert result["OriginalsDeleted"] == len(first) and result["OriginalsKept"] == len(arrived) == 5
    # On-ingest anonymization copies every original it sees arrive, those the job left in place included.
    copied = _wait_for_copies(server, set(arrived))
    assert all(server.get(f"/instances/{oid}").status_code == 200 for oid in arrived)
    assert set(copied) >= set(arrived)


def _wait_for_copies(server: OrthancServer, originals: set[str], timeout: float = 90.0) -> set[str]:
    """The originals (among ``originals``) that have a stored copy linked to them."""
    deadline = time.monotonic() + timeout
    while True:
        copied = {
            source
            for copy in server.json("/instances")
            if (source := metadata(server, "instances", copy, "AnonymizedFromResource")) in originals
        }
        if copied == originals or time.monotonic() > deadline:
            return copied
        time.sleep(0.5)
