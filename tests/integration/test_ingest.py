"""On-ingest anonymization with a real Orthanc: a storescu burst of interleaved studies, the filter, no loop,
DeleteOriginal, Gateway mode and forwarding to a second Orthanc."""

from __future__ import annotations

import re
import time

import pytest
from checks import read
from ingest_support import (
    assert_exactly_one_copy_each,
    auto_overrides,
    interleaved,
    originals_of,
    send,
    settle,
    studies_for,
    wait_for_instances,
)
from orthanc_server import OrthancServer
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, make_study, to_bytes

pytestmark = pytest.mark.integration

BURST_PATIENTS = [Patient(name=f"Burst^Patient{n}", id=f"PID-BURST-{n}") for n in range(5)]


def with_modality(files: list[bytes], modality: str) -> list[bytes]:
    changed = []
    for data in files:
        dataset = read(data)
        dataset.Modality = modality
        changed.append(to_bytes(dataset))
    return changed


def test_burst_of_interleaved_studies_each_becomes_one_anonymized_study_and_the_filter_holds(
    server_factory, tmp_path
) -> None:
    server = server_factory(
        "burst", overrides=auto_overrides(Filter={"Modality": "CT", "CallingAET": "MODALITY*"})
    ).start()
    # 5 studies x 3 series x 20 instances, arriving interleaved over one association.
    burst = interleaved(studies_for(BURST_PATIENTS, series=3, per_series=20))
    assert len(burst) == 300
    send(server, burst, tmp_path / "burst")
    # Not to anonymize: an MR study from the same modality AE, a CT study from another calling AE.
    mr_patient = Patient(name="Magnetic^Resonance", id="PID-MR-ONLY")
    pacs_patient = Patient(name="Archive^Sender", id="PID-FROM-PACS")
    send(server, with_modality(make_study(mr_patient, 1, 3), "MR"), tmp_path / "mr")
    send(server, make_study(pacs_patient, 1, 3), tmp_path / "pacs", calling_aet="PACS")

    wait_for_instances(server, 300 * 2 + 6)
    settle(server)
    studies = assert_exactly_one_copy_each(server, BURST_PATIENTS, unrelated=6)
    assert len(studies) == 5
    # The filtered-out studies are stored as they came, with no copy.
    for patient in (mr_patient, pacs_patient):
        for instance in originals_of(server, [patient]):
            assert server.json(f"/anonymizer/instances/{instance}/links")["Copies"] == []
    # The copies are de-identified, linked at every level, and never anonymized again (no loop: counted above).
    copy_study = next(iter(studies.values()))
    copy = server.json(f"/studies/{copy_study}")
    assert copy["PatientMainDicomTags"]["PatientID"] not in {patient.id for patient in BURST_PATIENTS}
    some_instance = server.json(f"/studies/{copy_study}/instances")[0]["ID"]
    tags = server.json(f"/instances/{some_instance}/simplified-tags")
    assert tags["PatientIdentityRemoved"] == "YES"
    assert "Burst" not in tags.get("PatientName", "")
    series_copy = server.json(f"/instances/{some_instance}")["ParentSeries"]
    assert server.get(f"/series/{series_copy}/metadata/AnonymizedFromResource").status_code == 200

    # An instance of the same study arriving much later, in a new series, joins the same anonymized study.
    first_original = next(iter(studies))
    study_uid = server.json(f"/studies/{first_original}")["MainDicomTags"]["StudyInstanceUID"]
    patient = next(
        p
        for p in BURST_PATIENTS
        if p.id == server.json(f"/studies/{first_original}")["PatientMainDicomTags"]["PatientID"]
    )
    late = to_bytes(make_instance(patient, study_uid, generate_uid(), 9, 1))
    send(server, [late], tmp_path / "late")
    wait_for_instances(server, 300 * 2 + 6 + 2)
    assert server.json(f"/anonymizer/studies/{first_original}/links")["Copies"] == [studies[first_original]]
    assert int(server.json(f"/studies/{studies[first_original]}/statistics")["CountInstances"]) == 61

    # One audit record per instance, by "auto" (written once its batch ends), and the chain is intact.
    records = _wait(
        lambda: [record for record in server.json("/anonymizer/audit") if record.get("User") == "auto"],
        lambda found: len({record["Source"] for record in found}) >= 301,
    )
    assert len({record["Source"] for record in records}) == 301
    assert all(record["Level"] == "Instance" and record["Instances"] == 1 for record in records)
    assert server.json("/anonymizer/audit/verify")["Valid"] is True
    texts = [server.log_text()] + [path.read_text() for path in server.state.rglob("*.json*")]
    for value in ("PID-BURST-0", "Burst^Patient", "Patient1", "PID-MR-ONLY"):
        assert not any(value in text for text in texts), value


def test_delete_original_only_after_its_copy_is_stored(server_factory) -> None:
    server = server_factory("delete", overrides=auto_overrides(DeleteOriginal=True)).start()
    patient = Patient(name="Deleted^Original", id="PID-DELETE-ME")
    files = make_study(patient, series=2, per_series=5)
    for data in files:
        server.upload(data)  # over REST this time
    deadline = time.monotonic() + 60
    while originals_of(server, [patient]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert originals_of(server, [patient]) == {}
    assert settle(server) == 10  # the copies, and nothing else
    (study,) = server.json("/studies")
    assert server.get(f"/studies/{study}/metadata/AnonymizedFromResource").status_code == 200
    records = _wait(
        lambda: [record for record in server.json("/anonymizer/audit") if record.get("User") == "auto"],
        lambda found: len(found) >= 10,
    )
    assert len(records) == 10 and all(record["DeletedOriginal"] for record in records)


def test_gateway_mode_never_stores_the_original(server_factory, tmp_path) -> None:
    server = server_factory("gateway", overrides=auto_overrides(Mode="Gateway", Filter={"Modality": "CT"})).start()
    patient = Patient(name="Gateway^Traveller", id="PID-GATEWAY-77", institution="Gateway General Hospital")
    files = make_study(patient, series=2, per_series=4)
    send(server, files, tmp_path / "gateway")
    other = Patient(name="Ultrasound^Only", id="PID-GATEWAY-US")
    sent_us = with_modality(make_study(other, 1, 2), "US")
    for data in sent_us:  # not matching: a gateway stores nothing it has not anonymized
        assert server.post("/instances", data, headers={"Content-Type": "application/dicom"}).status_code != 500
    assert settle(server) == 8
    assert originals_of(server, [patient, other]) == {}
    sent_uids = {read(data).SOPInstanceUID for data in files}
    for instance in server.json("/instances"):
        tags = server.json(f"/instances/{instance}/simplified-tags")
        assert tags["PatientIdentityRemoved"] == "YES"
        assert tags["SOPInstanceUID"] not in sent_uids
        # no original, so no link back to one
        assert server.get(f"/instances/{instance}/metadata/AnonymizedFromResource").status_code == 404
    (study,) = server.json("/studies")
    assert int(server.json(f"/studies/{study}/statistics")["CountInstances"]) == 8
    # Nothing of the original anywhere on disk: not in the storage area, not in the index, not in the state.
    for path in server.storage.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for value in (b"PID-GATEWAY", b"Traveller", b"Gateway General", *(uid.encode() for uid in sent_uids)):
                assert value not in content, (path.name, value)
    records = [record for record in server.json("/anonymizer/audit") if record.get("User") == "auto"]
    assert len(records) == 8
    assert {record["Result"] for record in records} == set(server.json("/instances"))
    assert all(record["Source"] is None and record["Mode"] == "Gateway" for record in records)


def test_stable_anonymized_study_is_forwarded_to_a_second_orthanc_retrying_until_it_is_up(server_factory) -> None:
    destination = server_factory("destination")
    source = server_factory(
        "source",
        overrides={
            **auto_overrides(ForwardTo=["RESEARCH"], StableAge=1),
            "DicomModalities": {"RESEARCH": ["ORTHANC", "127.0.0.1", destination.dicom_port]},
        },
    ).start()
    patient = Patient(name="Forwarded^Study", id="PID-FORWARD-1")
    files = make_study(patient, series=1, per_series=6)
    original_study = source.upload_study(files)
    # The destination is down: the first attempts fail, and the job says so.
    job_id = _wait_for_forward_job(source)
    record = _wait(lambda: source.json(f"/anonymizer/jobs/{job_id}"), lambda r: r["Attempts"] >= 1 and r["Errors"])
    assert record["Type"] == "Forward" and record["Destination"] == "RESEARCH" and record["State"] != "Success"
    destination.start()
    record = _wait(lambda: source.json(f"/anonymizer/jobs/{job_id}"), lambda r: r["State"] in ("Success", "Failure"))
    assert record["State"] == "Success", record
    assert record["Attempts"] >= 2
    (copy_study,) = source.json(f"/anonymizer/studies/{original_study}/links")["Copies"]
    assert record["Resources"] == [copy_study]
    # The destination holds the anonymized study, complete, and nothing of the original.
    (received,) = destination.json("/studies")
    assert received == copy_study  # same UIDs and patient, so the same Orthanc ID
    assert int(destination.json(f"/studies/{received}/statistics")["CountInstances"]) == 6
    assert destination.post("/tools/find", {"Level": "Patient", "Query": {"PatientID": patient.id}}).json() == []
    (audit,) = [r for r in source.json("/anonymizer/audit") if r.get("Event") == "forward"]
    assert audit["Job"] == job_id and audit["State"] == "Success" and audit["User"] == "auto"


def _wait_for_forward_job(server: OrthancServer, timeout: float = 60.0) -> str:
    """A user finds the forward job's ID in Orthanc's log (and, once it ends, in the audit trail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"forward job ([0-9a-f-]{36}): study", server.log_text())
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError("no forward job in time")


def _wait(fetch, done, timeout: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {value}")
        time.sleep(0.2)
        value = fetch()
    return value


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"Profile": "no-such-profile"}, "Anonymizer.AutoAnonymize.Profile"),
        ({"Options": ["RetainEverything"]}, "RetainEverything"),
        ({"ForwardTo": ["NOWHERE"]}, "NOWHERE"),
    ],
)
def test_wrong_auto_anonymize_setting_stops_start_up_naming_it(server_factory, settings, named) -> None:
    server = server_factory("wrong-auto", overrides=auto_overrides(**settings))
    assert server.launch().wait(60) != 0
    assert named in server.log_text()
