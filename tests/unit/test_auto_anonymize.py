"""AutoAnonymize without Orthanc: settings resolved like a REST request's, forwarding's retries, Gateway decisions,
and a batch that Orthanc's stop interrupted."""

from __future__ import annotations

import json
import threading
import time
import types
from concurrent.futures import Future
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from orthanc_anonymizer import pipeline
from orthanc_anonymizer.deid.engine import AnonymizationSettings
from orthanc_anonymizer.deid.profile_files import parse_rules
from orthanc_anonymizer.deid.profiles import Option, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import Failure, InstanceFailure, InstanceTask
from orthanc_anonymizer.server.auto_anonymize import AutoAnonymizer, resolve_auto_anonymize
from orthanc_anonymizer.server.cluster import ChangeLogGaps, IngestLeadership, SharedChangeCursor
from orthanc_anonymizer.server.config import AnonymizerConfig, ConfigurationError, SharedDatabase
from orthanc_anonymizer.server.forwarding import Forwarder, ForwardJob
from orthanc_anonymizer.server.gateway import DISCARD, KEEP, MODIFY, GatewayHandler, decide_in_worker
from orthanc_anonymizer.server.ingest import (
    AutoAnonymizeConfig,
    BatchOutcome,
    ChangeCursor,
    IngestFilter,
    IngestInterrupted,
    IngestLoop,
    JobBatchRunner,
)
from orthanc_anonymizer.server.job_records import INTERRUPTED, Job, JobSettings, JobStore, ResourceResult

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def config(auto: dict[str, Any], **kwargs: Any) -> AnonymizerConfig:
    return AnonymizerConfig(profiles_directory=PROFILES, secret=b"s", auto_anonymize=auto, **kwargs)


def test_disabled_is_nothing_and_defaults_follow_the_rest_routes() -> None:
    assert resolve_auto_anonymize(config({}), {}) is None
    setup = resolve_auto_anonymize(
        config({"Enabled": True}, default_options=(Option.CleanDesc,)), {"DicomModalities": {}}
    )
    assert setup is not None
    assert setup.settings.profile.name == "basic" and setup.settings.profile.options == {Option.CleanDesc}
    assert not setup.settings.in_place
    deleting = resolve_auto_anonymize(config({"Enabled": True, "DeleteOriginal": True, "Options": []}), {})
    assert deleting is not None and deleting.settings.in_place and deleting.settings.profile.options == frozenset()


@pytest.mark.parametrize(
    ("auto", "orthanc", "named"),
    [
        ({"Enabled": True, "Profile": "no-such-profile"}, {}, "AutoAnonymize.Profile"),
        ({"Enabled": True, "Options": ["RetainEverything"]}, {}, "RetainEverything"),
        ({"Enabled": True, "ForwardTo": ["NOWHERE"]}, {"DicomModalities": {"PACS": []}}, "NOWHERE"),
        ({"Enabled": True, "Mode": "Gateway", "Filter": {"CallingAET": "X"}}, {}, "Filter.CallingAET"),
        ({"Enabled": True, "Wrong": 1}, {}, "AutoAnonymize.Wrong"),
    ],
)
def test_wrong_settings_stop_start_up_naming_them(auto: dict[str, Any], orthanc: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        resolve_auto_anonymize(config(auto), orthanc)


class FakeOrthanc:
    """A modality that refuses the first ``failures`` store jobs."""

    def __init__(self, failures: int, anonymized: bool = True) -> None:
        self.failures = failures
        self.anonymized = anonymized
        self.stores: list[tuple[str, Any]] = []

    def get_metadata(self, level: str, resource: str, name: str) -> str | None:
        return "original-study" if self.anonymized else None

    def get_json(self, path: str) -> Any:
        if path == "/modalities":
            return ["RESEARCH"]
        if path == "/peers":
            return ["PEER"]
        if path == "/studies/gateway-study/instances":
            return [{"ID": "stored"}]
        if path == "/instances/stored/simplified-tags":
            return {"PatientIdentityRemoved": "YES", "DeidentificationMethod": "orthanc-anonymizer 0.1.0 profile basic"}
        if path.startswith("/jobs/"):
            number = int(path.rsplit("-", 1)[1])
            if number <= self.failures:
                return {"State": "Failure", "ErrorDescription": "DicomAssociation: Connection refused"}
            return {"State": "Success", "Progress": 100}
        raise AssertionError(path)

    def post_json(self, path: str, body: Any) -> Any:
        self.stores.append((path, body))
        return {"ID": f"job-{len(self.stores)}"}

    def close(self) -> None:
        pass


class Audit:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records.append(record)
        return record


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_forward_is_retried_with_back_off_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Forwarder, "FIRST_DELAY", 0.05)
    orthanc, audit, store = FakeOrthanc(failures=2), Audit(), JobStore(tmp_path / "jobs")
    forwarder = Forwarder(orthanc, store, audit, ("RESEARCH", "PEER"))  # type: ignore[arg-type]
    forwarder.start()
    try:
        forwarder.study_stable("copy-study")
        wait_for(lambda: len(audit.records) == 2)
    finally:
        forwarder.stop()
    by_destination = {record["Destination"]: record for record in audit.records}
    assert by_destination["RESEARCH"]["State"] == "Success" and by_destination["PEER"]["State"] == "Success"
    assert sum(record["Attempts"] for record in audit.records) == 4  # two refused, then one success each
    paths = sorted({path for path, _ in orthanc.stores})
    assert paths == ["/modalities/RESEARCH/store", "/peers/PEER/store"]
    assert all(body == {"Resources": ["copy-study"], "Asynchronous": True} for _, body in orthanc.stores)
    for record in audit.records:
        saved = store.load(record["Job"])
        assert saved is not None and saved["Type"] == "Forward" and saved["State"] == "Success"
        assert saved["Resources"] == ["copy-study"]
    retried = [store.load(record["Job"]) for record in audit.records if record["Errors"]]
    assert retried and all("Connection refused" in (job or {})["Errors"][0] for job in retried)


def test_a_study_that_is_no_copy_is_not_forwarded(tmp_path: Path) -> None:
    orthanc, audit = FakeOrthanc(failures=0, anonymized=False), Audit()
    forwarder = Forwarder(orthanc, JobStore(tmp_path / "jobs"), audit, ("RESEARCH",))  # type: ignore[arg-type]
    forwarder.start()
    forwarder.study_stable("original-study")
    time.sleep(0.2)
    forwarder.stop()
    assert orthanc.stores == [] and audit.records == []


def ct_instance(**values: str) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Gateway^Unit", "PID-GW-UNIT", "CT"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_gateway_decisions() -> None:
    task = InstanceTask(settings=AnonymizationSettings(profile=basic_profile(), hasher=KeyedHasher(b"s")))
    ct_only = IngestFilter.parse({"Modality": "CT", "Origin": "DicomProtocol"})
    decision = decide_in_worker(ct_instance(), task, ct_only, "DicomProtocol")
    assert decision.action == MODIFY and decision.outcome is not None and decision.outcome.data is not None
    copy = dcmread(BytesIO(decision.outcome.data))
    assert copy.PatientIdentityRemoved == "YES" and copy.PatientID != "PID-GW-UNIT"
    # the ID Orthanc will give it (the integration test checks it against a real Orthanc)
    assert decision.orthanc_id == pipeline.orthanc_instance_id(
        copy.PatientID, copy.StudyInstanceUID, copy.SeriesInstanceUID, copy.SOPInstanceUID
    )
    assert decide_in_worker(ct_instance(Modality="US"), task, ct_only, "DicomProtocol").action == DISCARD
    assert decide_in_worker(ct_instance(), task, ct_only, "RestApi").action == DISCARD
    # An output, markers and all, is no proof of anything: received again, it is anonymized again (only the bytes
    # of a copy the plugin is storing are kept, GatewayHandler.decide).
    forged = ct_instance(PatientIdentityRemoved="YES", DeidentificationMethod="orthanc-anonymizer 0.1.0 profile basic")
    again = decide_in_worker(forged, task, ct_only, "DicomProtocol")
    assert again.action == MODIFY and again.outcome is not None and again.outcome.data is not None
    assert b"PID-GW-UNIT" not in again.outcome.data
    assert decide_in_worker(b"not DICOM at all", task, ct_only, "DicomProtocol").action == DISCARD


def test_an_interrupted_batch_raises_so_the_position_stays() -> None:
    settings = JobSettings(profile=basic_profile())

    def interrupted(job: Job) -> Job:
        job.errors.append(INTERRUPTED)
        job.done.set()
        return job

    with pytest.raises(IngestInterrupted):
        JobBatchRunner(interrupted, settings, threading.Event())(["a", "b"])

    def finished(job: Job) -> Job:
        job.results = [
            ResourceResult("a", "Instance", resources=["copy-a"], instances=1, complete=True),
            ResourceResult("b", "Instance", error="unknown resource"),  # deleted since it arrived
            ResourceResult("c", "Instance", failed=[InstanceFailure("c", "residual", Failure.RESIDUAL_PHI)]),
        ]
        job.not_found.add("b")
        job.done.set()
        return job

    outputs: set[str] = set()
    outcome = JobBatchRunner(finished, settings, threading.Event(), outputs)(["a", "b", "c"])
    assert outcome.anonymized == 1 and [failure.as_json() for failure in outcome.failed] == [
        {"Instance": "c", "Reason": "residual"}
    ]
    assert outputs == {"copy-a"}


def test_a_forward_cut_short_by_a_stop_starts_again(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    cut = ForwardJob(study="copy-study", destination="RESEARCH", attempts=1)
    store.save(cut.record())
    assert store.mark_interrupted() == 1  # what start-up does to the jobs the last Orthanc left
    orthanc, audit = FakeOrthanc(failures=0), Audit()
    forwarder = Forwarder(orthanc, store, audit, ("RESEARCH",))  # type: ignore[arg-type]
    forwarder.start()
    try:
        wait_for(lambda: len(audit.records) == 1)
    finally:
        forwarder.stop()
    (record,) = audit.records
    assert record["State"] == "Success" and record["Source"] == "copy-study"
    old = store.load(cut.id)
    assert old is not None and old["ResumedAs"] == record["Job"]


class ChangeLog:
    """``/changes`` with dates, as Orthanc answers it."""

    def __init__(self, dates: list[str]) -> None:
        self.changes = [
            {"Seq": n + 1, "ChangeType": "NewInstance", "ID": f"i{n}", "Date": date} for n, date in enumerate(dates)
        ]

    def get_json(self, path: str) -> Any:
        if path == "/changes?last":
            return {"Last": len(self.changes)}
        if path.endswith("/simplified-tags"):
            return {"Modality": "CT"}
        since, limit = (int(part.split("=")[1]) for part in path.split("?")[1].split("&"))
        page = [change for change in self.changes if change["Seq"] > since][:limit]
        return {"Changes": page, "Done": True, "Last": page[-1]["Seq"] if page else since}


def test_first_run_keeps_what_arrived_while_orthanc_was_starting(tmp_path: Path) -> None:
    log = ChangeLog(["20261122T040000", "20261122T040001", "20261122T041500", "20261122T041501"])
    loop = IngestLoop(
        log,
        ChangeCursor(tmp_path / "c.json"),
        AutoAnonymizeConfig(enabled=True),
        lambda b: None,  # type: ignore[arg-type,return-value]
        started_at="20261122T041500",  # the plugin started then; the DICOM port opened before loop reached REST
    )
    assert loop.start_position() == 2  # the two older changes stay as they are; the two since are anonymized
    assert ChangeCursor(tmp_path / "c.json").load() == 2


def test_in_gateway_mode_a_stable_study_of_anonymized_instances_is_forwarded(tmp_path: Path) -> None:
    orthanc, audit = FakeOrthanc(failures=0, anonymized=False), Audit()  # no link back: there is no original
    store = JobStore(tmp_path / "jobs")
    forwarder = Forwarder(orthanc, store, audit, ("RESEARCH",), gateway=True)  # type: ignore[arg-type]
    forwarder.start()
    try:
        forwarder.study_stable("gateway-study")
        wait_for(lambda: len(audit.records) == 1)
    finally:
        forwarder.stop()
    assert audit.records[0]["State"] == "Success" and orthanc.stores[0][1]["Resources"] == ["gateway-study"]


def test_two_batches_in_flight_move_the_position_in_order_only(tmp_path: Path) -> None:
    log = ChangeLog(["20261122T040000"] * 10)
    cursor = ChangeCursor(tmp_path / "c.json")
    cursor.save(0)
    started: list[list[str]] = []
    waited: list[list[str]] = []

    def start(batch: list[str]) -> Any:
        started.append(batch)

        def wait() -> BatchOutcome:
            if batch == ["i4", "i5"]:
                raise ConnectionError("Orthanc went away")  # the third batch never ends
            waited.append(batch)
            return BatchOutcome(anonymized=len(batch))

        return wait

    config = AutoAnonymizeConfig(enabled=True, batch_size=2)
    loop = IngestLoop(log, cursor, config, lambda b: BatchOutcome(), start_batch=start, in_flight=2)
    with pytest.raises(ConnectionError):
        loop.poll_once(0)
    assert started[:3] == [["i0", "i1"], ["i2", "i3"], ["i4", "i5"]]  # the next began before the previous ended
    assert waited == [["i0", "i1"], ["i2", "i3"]]
    assert cursor.load() == 4  # past the two batches that ended, not past the one that did not

    loop = IngestLoop(
        log,
        cursor,
        config,
        lambda b: BatchOutcome(),
        start_batch=lambda batch: lambda: BatchOutcome(anonymized=len(batch)),
        in_flight=2,
    )
    assert loop.poll_once(4) == (10, True)
    assert cursor.load() == 10 and loop.processed == 6


class ImmediatePool:
    """Runs a worker's function at once, in this thread, and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def call(self, function: Any, *args: Any) -> Any:
        self.calls += 1
        future: Future[Any] = Future()
        future.set_result(function(*args))
        return future


def test_the_gateway_keeps_only_the_bytes_the_plugin_is_storing() -> None:
    task = InstanceTask(settings=AnonymizationSettings(profile=basic_profile(), hasher=KeyedHasher(b"s")))
    settings = JobSettings(profile=basic_profile())
    own = ct_instance()
    forged = ct_instance(PatientIdentityRemoved="YES", DeidentificationMethod="orthanc-anonymizer 0.1.0 profile basic")
    pool, audit = ImmediatePool(), Audit()
    handler = GatewayHandler(pool, task, settings, IngestFilter(), audit, own_store=lambda data: data == own)  # type: ignore[arg-type]
    assert handler.decide(own, "RestApi") == (KEEP, None) and pool.calls == 0
    action, data = handler.decide(forged, "DicomProtocol")
    assert action == MODIFY and data is not None and b"PID-GW-UNIT" not in data and pool.calls == 1
    assert [record["Mode"] for record in audit.records] == ["Gateway"]


def test_the_gateway_stores_no_copy_with_residual_phi_and_audits_no_filter_miss() -> None:
    """A copy the residual-PHI check finds the patient in is discarded, never handed to Orthanc, and its audit
    record counts the leak by its type (no value in it); an instance the filter does not select is discarded
    without an audit record (it is not the gateway's to anonymize)."""
    leaky = basic_profile().with_rules(parse_rules("0020,4000;K\n", "csv", "test"))  # ImageComments kept
    task = InstanceTask(settings=AnonymizationSettings(profile=leaky, hasher=KeyedHasher(b"s")))
    settings = JobSettings(profile=leaky)
    pool, audit = ImmediatePool(), Audit()
    ct_only = IngestFilter.parse({"Modality": "CT"})
    handler = GatewayHandler(pool, task, settings, ct_only, audit, own_store=lambda data: False)  # type: ignore[arg-type]
    leaking = ct_instance(ImageComments="follow-up of Gateway^Unit, PID-GW-UNIT")
    assert handler.decide(leaking, "DicomProtocol") == (DISCARD, None)
    (record,) = audit.records
    assert record["Instances"] == 0 and record["ResidualPhi"]["Leaking"] == 1
    assert "0020,4000" in record["Failed"][0]["Reason"]
    assert "PID-GW-UNIT" not in json.dumps(record) and "Gateway^Unit" not in json.dumps(record)
    assert handler.decide(ct_instance(Modality="US"), "DicomProtocol") == (DISCARD, None)
    assert len(audit.records) == 1 and pool.calls == 2


class Links:
    def source(self, level: str, copy: str) -> str | None:
        return "original" if (level, copy) == ("Instance", "known-copy") else None


def test_the_running_parts_get_their_collaborators_when_made(tmp_path: Path) -> None:
    """Copy mode on a cluster: the loop keeps its position in the shared database, waits at holes of the log and
    stops when the lead is lost; it knows copies by the links index and the batches' outputs by the runner's set.
    Gateway mode refuses a job manager that does not register the copies it stores (they would be anonymized
    again)."""
    manager = types.SimpleNamespace(
        register_stores=False,
        hasher=KeyedHasher(b"s"),
        audit=None,
        links=Links(),
        is_storing=lambda data: False,
        submit=lambda job: job,
    )
    settings = config({"Enabled": True}, state_directory=tmp_path, concurrent_jobs=4)
    setup = resolve_auto_anonymize(settings, {})
    assert setup is not None
    leadership = IngestLeadership(SharedDatabase(parameters={}, node="n"))
    auto = AutoAnonymizer(setup, settings, None, manager, None, None, leadership)  # type: ignore[arg-type]
    loop = auto.loop
    assert isinstance(loop.cursor, SharedChangeCursor) and loop.cursor.leadership is leadership
    assert isinstance(loop.gaps, ChangeLogGaps) and loop.leading == leadership.leading
    assert loop.known_copy("known-copy") and not loop.known_copy("an-original")
    assert isinstance(loop.run_batch, JobBatchRunner) and loop.run_batch.outputs is loop.own_outputs
    assert loop.start_batch == loop.run_batch.start and loop.in_flight == 2 and loop.follow_new_instances

    gateway = config({"Enabled": True, "Mode": "Gateway"}, state_directory=tmp_path)
    gateway_setup = resolve_auto_anonymize(gateway, {})
    assert gateway_setup is not None
    with pytest.raises(ValueError, match="register_stores"):
        AutoAnonymizer(gateway_setup, gateway, None, manager, None, None)  # type: ignore[arg-type]
    manager.register_stores = True
    auto = AutoAnonymizer(gateway_setup, gateway, None, manager, None, None)  # type: ignore[arg-type]
    assert auto.gateway is not None and auto.gateway.own_store is manager.is_storing
    assert isinstance(auto.loop.cursor, ChangeCursor) and auto.loop.gaps is None and auto.loop.leading is None
    assert not auto.loop.follow_new_instances
