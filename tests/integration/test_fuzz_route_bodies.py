"""Fuzzed request bodies against one running Orthanc: every answer is 200, 400 or 404, never 500, and Orthanc stays up.

Hypothesis sends random JSON values, bodies shaped like the real ones with random values in each field, and bytes
that are not JSON (random, truncated, nested too deep) to ``POST /anonymizer/{level}/{id}`` and
``POST /anonymizer/batch``. The budget is fixed and small for `make test` (100 examples per route); raise it by
hand with ``HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/integration/test_fuzz_route_bodies.py`` (3,000 each).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from orthanc_server import OrthancServer
from study_generator import Patient, make_study

from orthanc_anonymizer.deid.profiles import Option

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
EXAMPLES = 3000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
UNKNOWN = "00000000-00000000-00000000-00000000-00000000"
PATIENT = Patient(name="Fuzzed^Leocadia", id="PID-FUZZ-4242")
FILES = make_study(PATIENT, 1, 1)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
profile_names = st.sampled_from(
    ["basic", "research-longitudinal", "teaching-file", "../../etc/passwd", "/etc/passwd", "%2e%2e/x", ".", ""]
) | st.text(max_size=20)
option_names = st.sampled_from([option.value for option in Option] + ["Bogus", "retainuids", ""])
tags = st.sampled_from(["0010,0010", "50xx,xxxx", "(0008,0080)", "00100010", "zzzz,zzzz", "0010,001"]) | st.text(
    max_size=12
)
actions = st.sampled_from(["X", "Z", "D", "K", "C", "U", "X/Z", "Q", ""])
rules = st.lists(
    st.fixed_dictionaries({}, optional={"Tag": tags | json_values, "Action": actions | json_values}), max_size=3
)
flags = st.booleans() | json_values
settings_fields = {
    "Profile": profile_names | json_values,
    "Options": st.lists(option_names, max_size=3) | json_values,
    "Rules": rules | json_values,
    "PatientName": st.text(max_size=80) | json_values,
    "PatientID": st.text(max_size=80) | json_values,
    "InPlace": flags,
    "DryRun": flags,
    "IncludeValues": flags,
    "Asynchronous": flags,
}
shaped_bodies = st.fixed_dictionaries({}, optional=settings_fields)
valid_bodies = st.fixed_dictionaries(  # mostly accepted: the fuzzing reaches jobs, workers and stores too
    {},
    optional={
        "Profile": st.sampled_from(["basic", "research-longitudinal", "teaching-file"]),
        "Options": st.lists(st.sampled_from([option.value for option in Option]), max_size=2, unique=True),
        "Rules": st.lists(
            st.fixed_dictionaries({"Tag": st.sampled_from(["0010,0010", "0008,0080"]), "Action": actions}), max_size=2
        ),
        "PatientName": st.text(max_size=64),
        "PatientID": st.text(max_size=64),
        "DryRun": st.booleans(),
        "Asynchronous": st.booleans(),
    },
)
levels = st.sampled_from(["Patient", "Study", "Series", "Instance", "studies", "STUDY", "Galaxy", ""]) | json_values


def not_json() -> st.SearchStrategy[bytes]:
    valid = st.builds(lambda value: json.dumps(value).encode(), shaped_bodies)
    truncated = st.builds(lambda data, cut: data[: max(1, len(data) * cut // 100)], valid, st.integers(0, 99))
    deep = st.builds(
        lambda depth, bracket: bracket * depth, st.integers(500, 200_000), st.sampled_from([b"[", b'{"a":'])
    )
    return st.binary(max_size=200) | truncated | deep | st.sampled_from([b"\xff\xfe{", b'{"Profile": "\xc3\x28"}'])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path_factory.mktemp("fuzz"), {"Anonymizer": {"Workers": 1}})
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def study(server) -> str:
    return server.upload_study(FILES)


def send(server: OrthancServer, path: str, body: object) -> requests.Response:
    if isinstance(body, bytes):
        response = server.session.post(server.url + path, data=body, timeout=120)
    else:
        response = server.session.post(server.url + path, data=json.dumps(body).encode(), timeout=120)
    assert response.status_code in (200, 400, 404), (path, body, response.status_code, response.text[:500])
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics: how many got through to a job
    if response.status_code != 200:
        assert response.json()["Message"], response.text
    return response


def keep_the_original(server: OrthancServer, body: object, response: requests.Response) -> None:
    """An accepted InPlace body deletes the original: store it again (same bytes, same Orthanc ID) once the job,
    if it runs as one, has ended; so no job piles up and the next example finds the study."""
    if response.status_code == 200 and "Job" in response.json():
        server.wait_job(response.json()["Job"])
    if isinstance(body, dict) and body.get("InPlace") is True:
        server.upload_study(FILES)


@FUZZ
@given(
    body=json_values | shaped_bodies | valid_bodies | not_json(),
    level=st.sampled_from(["patients", "studies", "series"]),
)
def test_fuzzed_anonymize_bodies_are_answered_200_400_or_404(server, study, body, level) -> None:
    ids = {"studies": study, "series": None, "patients": None}
    resource = ids[level] or server.json(f"/studies/{study}")["Series" if level == "series" else "ParentPatient"]
    if isinstance(resource, list):
        resource = resource[0]
    keep_the_original(server, body, send(server, f"/anonymizer/{level}/{resource}", body))


@FUZZ
@given(
    body=json_values
    | not_json()
    | st.builds(
        lambda shaped, level, resources: {**shaped, "Level": level, "Resources": resources},
        shaped_bodies | valid_bodies,
        levels | st.sampled_from(["Study", "Series"]),
        st.lists(st.sampled_from(["STUDY", UNKNOWN, "../../etc"]), min_size=1, max_size=3, unique=True)
        | st.lists(st.sampled_from(["STUDY", UNKNOWN, ""]), max_size=3)
        | json_values,
    )
)
def test_fuzzed_batch_bodies_are_answered_200_or_400(server, study, body) -> None:
    if isinstance(body, dict) and isinstance(body.get("Resources"), list):
        body["Resources"] = [study if item == "STUDY" else item for item in body["Resources"]]
    response = send(server, "/anonymizer/batch", body)
    assert response.status_code != 404
    keep_the_original(server, body, response)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "..\\..\\etc\\passwd",
        "research-longitudinal/../../../etc/passwd",
        "../profiles/research-longitudinal.json",
        "..",
        "~root",
        "file:///etc/passwd",
        "research-longitudinal\x00.json",
    ],
)
def test_path_tricks_in_profile_names_are_refused(server, study, name) -> None:
    for path, body in [
        (f"/anonymizer/studies/{study}", {"Profile": name}),
        ("/anonymizer/batch", {"Level": "Study", "Resources": [study], "Profile": name}),
    ]:
        response = server.post(path, body)
        assert response.status_code == 400, (name, response.text)
        assert "profile" in response.json()["Message"].lower()
        assert "root:" not in response.text  # nothing of /etc/passwd


def test_orthanc_is_up_after_the_fuzzing_and_logged_no_route_failure(server) -> None:
    assert server.get("/system", timeout=10).status_code == 200
    assert server.get("/anonymizer/profiles", timeout=10).status_code == 200
    assert server.process is not None and server.process.poll() is None
    assert " failed: " not in server.log_text()  # the glue logs every 500 as "<METHOD> <uri> failed: ..."
