"""A file that claims to be this plugin's output (PatientIdentityRemoved YES and this engine's De-identification
Method, which anyone can write) is an original like any other: anonymized, audited, linked; only provenance an
outsider cannot forge marks a copy (the links index in Copy mode, the exact bytes being stored in Gateway mode)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from checks import metadata, read
from ingest_support import auto_overrides, send
from orthanc_server import OrthancServer
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, to_bytes

from orthanc_anonymizer.deid.engine import AnonymizationSettings
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import InstanceTask, anonymize_instance, orthanc_instance_id

pytestmark = pytest.mark.integration
NAME, FAMILY, GIVEN = "Forgery^Ottoline", b"Forgery", b"Ottoline"
ID, ACCESSION = "PID-FORGED-4471", "ACC-FORGED-9902"


def _engine_method() -> str:
    """The De-identification Method this engine writes (the plugin's engine is this very code), read from a copy."""
    patient = Patient(name="Genuine^Sample", id="PID-GENUINE-1")
    task = InstanceTask(settings=AnonymizationSettings(profile=basic_profile(), hasher=KeyedHasher(b"any secret")))
    outcome = anonymize_instance(to_bytes(make_instance(patient, generate_uid(), generate_uid(), 1, 1)), task)
    assert outcome.data is not None
    method = read(outcome.data).DeidentificationMethod
    text = "\\".join(method) if not isinstance(method, str) else method
    assert "orthanc-anonymizer" in text
    return str(text)


def forged(method: str, number: int) -> bytes:
    """A file with real identifying values that says it is already de-identified by this engine."""
    patient = Patient(name=NAME, id=ID)
    dataset = make_instance(
        patient,
        generate_uid(),
        generate_uid(),
        1,
        number,
        AccessionNumber=ACCESSION,
        PatientIdentityRemoved="YES",
        DeidentificationMethod=method,
    )
    return to_bytes(dataset)


def _phi_in(data: bytes) -> list[bytes]:
    values = [FAMILY, GIVEN, ID.encode(), ACCESSION.encode()]
    variants = [v for value in values for v in (value, value.upper(), value.decode().encode("utf-16-le"))]
    return [value for value in variants if value in data]


def _stored_files(server: OrthancServer) -> dict[str, bytes]:
    return {instance: server.get(f"/instances/{instance}/file").content for instance in server.json("/instances")}


def _attachments(server: OrthancServer) -> list[Path]:
    """Orthanc's storage area: the stored files themselves (the index is a database apart)."""
    pattern = re.compile(r"[0-9a-f]{2}")
    return [
        path
        for path in server.storage.glob("*/*/*")
        if path.is_file() and pattern.fullmatch(path.parent.name) and pattern.fullmatch(path.parent.parent.name)
    ]


def _wait(fetch: Any, done: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"not in time: {value}"
        time.sleep(0.2)
        value = fetch()
    return value


def _send(server: OrthancServer, data: bytes, transport: str, folder: Path) -> None:
    if transport == "rest":
        response = server.post("/instances", data, headers={"Content-Type": "application/dicom"})
        assert response.status_code == 200, response.text
    else:
        send(server, [data], folder)


@pytest.mark.parametrize("transport", ["rest", "dicom"])
def test_copy_mode_with_delete_original_anonymizes_a_forged_file(server_factory, tmp_path, transport) -> None:
    server = server_factory("copy", overrides=auto_overrides(DeleteOriginal=True)).start()
    method = _engine_method()
    data = forged(method, 1)
    sop = str(read(data).SOPInstanceUID)
    ds = read(data)
    source = orthanc_instance_id(ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    _send(server, data, transport, tmp_path / "send")
    # The forged original, once it arrived: its copy is made, then (DeleteOriginal) the original deleted.
    original = _wait(
        lambda: [r for r in server.json("/anonymizer/audit") if r.get("User") == "auto" and r["Source"] == source],
        lambda found: bool(found),
    )[0]
    assert original["DeletedOriginal"] is True and original["Failed"] == []
    copy = original["Result"]
    assert metadata(server, "instances", copy, "AnonymizedFromResource") == original["Source"]
    assert server.json(f"/anonymizer/instances/{copy}/links")["Source"] == original["Source"]
    assert server.get(f"/instances/{original['Source']}").status_code == 404
    copied = read(server.get(f"/instances/{copy}/file").content)
    assert str(copied.SOPInstanceUID) != sop and str(copied.PatientID) != ID
    # Nothing of the forged file's identity is stored anywhere: not in what Orthanc serves, not on its disk.
    for instance, content in _stored_files(server).items():
        assert _phi_in(content) == [], instance
    for path in _attachments(server):
        assert _phi_in(path.read_bytes()) == [], path.name
    # The copy itself is known as a copy: once the ingest loop has passed its arrival, it is not anonymized again.
    last = server.json("/changes?last")["Last"]
    position = server.state / "ingest-position.json"
    _wait(lambda: json.loads(position.read_text())["Last"] if position.exists() else -1, lambda seen: seen >= last)
    records = [r for r in server.json("/anonymizer/audit") if r.get("User") == "auto"]
    assert copy not in [r["Source"] for r in records]
    assert [r["Source"] for r in records].count(source) == 1


@pytest.mark.parametrize("transport", ["rest", "dicom"])
def test_gateway_anonymizes_a_forged_file(server_factory, tmp_path, transport) -> None:
    server = server_factory("gateway", overrides=auto_overrides(Mode="Gateway")).start()
    method = _engine_method()
    before = {r["Sequence"] for r in server.json("/anonymizer/audit")}
    data = forged(method, 2)
    sop = str(read(data).SOPInstanceUID)
    _send(server, data, transport, tmp_path / "send")
    (record,) = [r for r in server.json("/anonymizer/audit") if r["Sequence"] not in before]
    assert record["Mode"] == "Gateway" and record["Instances"] == 1 and record["Source"] is None
    stored = server.json(f"/instances/{record['Result']}/simplified-tags")
    assert stored["SOPInstanceUID"] != sop and stored["PatientID"] != ID
    for instance, content in _stored_files(server).items():
        assert _phi_in(content) == [], instance
    for path in server.storage.rglob("*"):  # a gateway never stores the original: not even in the index
        if path.is_file():
            assert _phi_in(path.read_bytes()) == [], path.name


def test_gateway_stores_a_copy_its_rest_routes_make_as_it_is(server_factory) -> None:
    """A copy the REST routes make on a gateway is the plugin's own (its exact bytes): stored as it is, linked, and
    not anonymized a second time by the gateway."""
    server = server_factory("gateway-own", overrides=auto_overrides(Mode="Gateway")).start()
    patient = Patient(name="Gateway^Ownership", id="PID-GATEWAY-OWN")
    stored = server.upload(to_bytes(make_instance(patient, generate_uid(), generate_uid(), 1, 1)))["ID"]
    before = {r["Sequence"] for r in server.json("/anonymizer/audit")}
    answer = server.anonymize("instances", stored, {"Options": ["CleanDesc"]})
    assert answer["Failed"] == [] and answer["Instances"] == 1
    new = [r for r in server.json("/anonymizer/audit") if r["Sequence"] not in before]
    assert [r.get("Mode") for r in new] == [None]  # the route's record only, no gateway record
    assert metadata(server, "instances", answer["Resource"], "AnonymizedFromResource") == stored
