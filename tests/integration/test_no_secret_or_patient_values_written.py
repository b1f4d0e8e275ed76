"""Every route, errors included, with a distinctive secret and distinctive patients (one received over DICOM):
the secret is in no answer, no log line and no file the plugin writes, in clear, base64 or hex; the patients'
values are in no answer (but the dry run that asked for them), no log line, and no file outside Orthanc's own
storage of the DICOM files: not the audit trail, the job records, the links index nor any temporary file."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
from orthanc_server import OrthancServer
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, make_study, to_bytes, write_files
from test_anonymize_study_received_over_dicom import storescu

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SECRET = "Kx9-canary-secret-7Qw2zRt4"
UNKNOWN = "00000000-00000000-00000000-00000000-00000000"
REST_PATIENT = Patient(
    name="Canarywright^Ottavio",
    id="PID-CANARY-90417",
    birth_date="19530211",
    institution="Hospital of Saint Canary",
    physician="Referrer^Ermengarde",
)
DICOM_PATIENT = Patient(name="Dimsecanary^Rosalind", id="PID-DIMSE-31337", birth_date="19480923")


def secret_forms() -> list[bytes]:
    raw = SECRET.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode, base64.b32encode):
        forms.append(encode(raw).rstrip(b"="))
    # base64 of the secret starting at each offset of 3, as it would appear inside a longer encoded text
    forms += [base64.b64encode(raw[offset:])[:16] for offset in (1, 2)]
    return forms


def patient_values() -> list[bytes]:
    values: list[str] = ["ACC20240917"]
    for patient in (REST_PATIENT, DICOM_PATIENT):
        values += [*patient.name.split("^"), patient.id, patient.birth_date]
    values += [REST_PATIENT.institution, *REST_PATIENT.physician.split("^")]
    return [value.encode() for value in values]


def found(data: bytes, needles: list[bytes]) -> list[bytes]:
    lowered = data.lower()
    return [needle for needle in needles if needle.lower() in lowered]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    folder = tmp_path_factory.mktemp("canary")
    temporary = folder / "tmp"  # Orthanc's and the workers' temporary files, to be searched too
    temporary.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(temporary))
    server = OrthancServer(folder, secret=SECRET)
    try:
        yield server.start()
    finally:
        patch.undo()
        server.stop()


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom, in the test, writing an invalid CS value
def test_secret_and_patient_values_stay_out_of_answers_logs_and_state(server, tmp_path) -> None:
    rest_study = server.upload_study(make_study(REST_PATIENT, 2, 2))
    dicom_files = make_study(DICOM_PATIENT, 1, 3)
    storescu(server, write_files(dicom_files, tmp_path / "dimse"))
    (dicom_study,) = [study for study in server.json("/studies") if study != rest_study]
    leaky = make_instance(REST_PATIENT, generate_uid(), generate_uid(), 1, 1)
    leaky.add_new(0x00180015, "CS", "OTTAVIO")  # kept by the profile: the residual check fails the instance
    leaky_study = server.upload(to_bytes(leaky))["ParentStudy"]
    series = server.json(f"/studies/{rest_study}")["Series"][0]
    instance = server.json(f"/series/{series}")["Instances"][0]
    patient = server.json(f"/studies/{rest_study}")["ParentPatient"]

    answers: list[tuple[str, requests.Response]] = []
    with_values: list[requests.Response] = []

    def call(method: str, path: str, body: object = None, *, data: bytes | None = None) -> requests.Response:
        response = server.session.request(
            method, server.url + path, json=body if data is None else None, data=data, timeout=120
        )
        answers.append((f"{method} {path}", response))
        assert response.status_code < 500, (path, response.status_code, response.text)
        return response

    call("GET", "/anonymizer/profiles")
    copy = call("POST", f"/anonymizer/studies/{rest_study}", {}).json()["Resource"]
    call("POST", f"/anonymizer/studies/{rest_study}", {"Profile": "research-longitudinal", "PatientID": "P-2"})
    call("POST", f"/anonymizer/patients/{patient}", {"Options": ["RetainLongModifDates", "CleanDesc"]})
    call("POST", f"/anonymizer/series/{series}", {"Rules": [{"Tag": "0008,0080", "Action": "X"}]})
    call("POST", f"/anonymizer/instances/{instance}", {"DryRun": True})
    with_values.append(call("POST", f"/anonymizer/studies/{rest_study}", {"DryRun": True, "IncludeValues": True}))
    values_job = call(
        "POST", f"/anonymizer/series/{series}", {"DryRun": True, "IncludeValues": True, "Asynchronous": True}
    ).json()["Job"]
    server.wait_job(values_job)
    with_values.append(call("GET", f"/anonymizer/jobs/{values_job}"))
    job = call("POST", f"/anonymizer/studies/{dicom_study}", {"Asynchronous": True, "InPlace": True}).json()["Job"]
    server.wait_job(job)
    call("GET", f"/anonymizer/jobs/{job}")
    failing = call("POST", f"/anonymizer/studies/{leaky_study}", {}).json()
    assert failing["Failed"] and "0018,0015" in failing["Failed"][0]["Reason"]
    batch = call("POST", "/anonymizer/batch", {"Level": "Study", "Resources": [rest_study, UNKNOWN]}).json()["Job"]
    assert server.wait_job(batch)["State"] == "Failure"
    call("GET", f"/anonymizer/jobs/{batch}")
    call("GET", f"/anonymizer/studies/{copy}/links")
    call("GET", f"/anonymizer/studies/{rest_study}/links")
    call("GET", "/anonymizer/audit")
    call("GET", "/anonymizer/audit?since=1&limit=2")
    call("GET", "/anonymizer/audit/verify")
    call("GET", f"/anonymizer/instances/{instance}/pixel-preview?options=CleanPixelData")
    # Errors: each names the bad part, none quotes a secret or a patient value.
    errors = [
        ("POST", f"/anonymizer/studies/{rest_study}", None, b"{not json " + SECRET.encode()),
        ("POST", f"/anonymizer/studies/{rest_study}", {"Profile": "no-such-profile"}, None),
        ("POST", f"/anonymizer/studies/{rest_study}", {"Profile": "../../etc/passwd"}, None),
        ("POST", f"/anonymizer/studies/{rest_study}", {"Options": ["RetainAll"]}, None),
        ("POST", f"/anonymizer/studies/{rest_study}", {"Rules": [{"Tag": "zz", "Action": "X"}]}, None),
        ("POST", f"/anonymizer/studies/{rest_study}", {"Secret": "x"}, None),
        ("POST", f"/anonymizer/studies/{rest_study}", {"IncludeValues": True}, None),
        ("POST", f"/anonymizer/studies/{UNKNOWN}", {}, None),
        ("GET", f"/anonymizer/studies/{rest_study}", None, None),
        ("POST", "/anonymizer/batch", {"Level": "Galaxy", "Resources": ["x"]}, None),
        ("GET", f"/anonymizer/jobs/{UNKNOWN}", None, None),
        ("GET", "/anonymizer/jobs/..%2F..%2Fetc%2Fpasswd", None, None),
        ("GET", f"/anonymizer/series/{UNKNOWN}/links", None, None),
        ("GET", "/anonymizer/audit?since=-1", None, None),
        ("POST", "/anonymizer/profiles", {}, None),
        ("GET", f"/anonymizer/instances/{instance}/pixel-preview?frame=99", None, None),
        ("GET", f"/anonymizer/instances/{UNKNOWN}/pixel-preview", None, None),
    ]
    for method, path, body, data in errors:
        assert call(method, path, body, data=data).status_code in (400, 404, 405), path
    assert server.get("/system").status_code == 200

    # The answers.
    secrets, values = secret_forms(), patient_values()
    for what, response in answers:
        assert not found(response.content, secrets), what
        if response not in with_values:
            assert not found(response.content, values), what
    assert found(with_values[0].content, [b"Canarywright"])  # the values asked for were there
    # Orthanc's log and everything under the test's folder but Orthanc's own DICOM storage (files and index).
    storage_files = {  # Orthanc's attachments: <storage>/1c/40/1c406dcf-...
        path
        for path in server.storage.glob("??/??/*")
        if path.parent.parent.name == path.name[:2] and path.parent.name == path.name[2:4]
    }
    written = [
        path
        for path in server.folder.rglob("*")
        if path.is_file() and path not in storage_files and not path.name.startswith("index")
    ]
    searched = {path.relative_to(server.folder).as_posix() for path in written}
    assert {"orthanc.log", "storage/anonymizer/audit.jsonl", "storage/anonymizer/links.sqlite"} <= searched
    assert sum(1 for name in searched if name.startswith("storage/anonymizer/jobs/")) >= 8
    for path in written:
        data = path.read_bytes()
        assert not found(data, secrets), path
        assert not found(data, values), (path, found(data, values))
    # Orthanc's own storage: the REST originals (4 + the leaky one) hold the values, no copy does, and the
    # DICOM-received study anonymized InPlace is gone from the disk.
    assert sum(1 for path in storage_files if found(path.read_bytes(), [b"Canarywright"])) == 5
    assert not [path for path in storage_files if found(path.read_bytes(), [b"Dimsecanary", b"PID-DIMSE-31337"])]
    # The secret was in use: Orthanc's log says nothing of a development secret.
    assert "development secret" not in server.log_text()
