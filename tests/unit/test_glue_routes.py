"""The glue without Orthanc: a stand-in ``orthanc`` module records what the routes answer."""

from __future__ import annotations

import base64
import importlib
import json
import sys
import threading
import time
import types
from typing import Any

import pytest

from orthanc_anonymizer.server.api import BadRequest, RequestTooLarge
from orthanc_anonymizer.server.config import AnonymizerConfig
from orthanc_anonymizer.server.job_records import ResourceResult
from orthanc_anonymizer.server.orthanc_client import ResourceNotFound


class Output:
    def __init__(self) -> None:
        self.status: int | None = None
        self.body: Any = None

    def AnswerBuffer(self, body: str, mime: str) -> None:
        self.status, self.body = 200, json.loads(body)

    def SendHttpStatus(self, status: int, body: str, size: int) -> None:
        assert size == len(body.encode())
        self.status, self.body = status, json.loads(body)

    def SendMethodNotAllowed(self, allowed: str) -> None:
        self.status, self.body = 405, allowed


@pytest.fixture
def glue(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = types.ModuleType("orthanc")
    fake.logged = []  # type: ignore[attr-defined]
    for level in ("LogInfo", "LogWarning", "LogError"):
        setattr(fake, level, lambda message, level=level: fake.logged.append((level, message)))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orthanc", fake)
    sys.modules.pop("orthanc_anonymizer.server.glue", None)
    module = importlib.import_module("orthanc_anonymizer.server.glue")
    yield module
    sys.modules.pop("orthanc_anonymizer.server.glue", None)


def call(route: Any, method: str = "GET", **request: Any) -> Output:
    output = Output()
    route(output, "/anonymizer/x", method=method, **request)
    return output


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest("Options: expected a list"), 400),
        (RequestTooLarge("body: 2000000 bytes, more than Anonymizer.MaximumRequestBytes (1048576)"), 413),
        (ResourceNotFound("GET", "/studies/x", 404), 404),
        (KeyError("Patientname^Secret"), 500),
    ],
)
def test_errors_become_http_statuses_without_values(glue: types.ModuleType, error: Exception, status: int) -> None:
    @glue._route(("POST",))
    def route(output: Any, uri: str, **request: Any) -> None:
        raise error

    output = call(route, "POST")
    assert output.status == status
    assert "Patientname" not in json.dumps(output.body)
    assert "Patientname" not in str(sys.modules["orthanc"].logged)  # type: ignore[attr-defined]
    assert call(route, "GET").status == 405


def test_busy_gate_refuses_at_once_and_frees_its_place(glue: types.ModuleType) -> None:
    gate = glue._Gate(http_threads=13, concurrent_jobs=1)
    assert gate.waiting == 2  # 13 threads - 3 for the job runner and its storers - 4 checks - 4 spare
    with gate.hold(), gate.hold(), pytest.raises(glue._Busy), gate.hold():
        pass
    with gate.hold():
        pass  # places were given back


def test_gate_bounds_loopback_calls(glue: types.ModuleType) -> None:
    gate = glue._Gate(http_threads=100, concurrent_jobs=2)
    inside, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def check() -> None:
        nonlocal inside, peak
        with gate.hold(), gate.loopback():
            with lock:
                inside += 1
                peak = max(peak, inside)
            release.wait(60)  # held until the test has seen the gate full
            with lock:
                inside -= 1

    threads = [threading.Thread(target=check) for _ in range(12)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while inside < glue._Gate.CHECKS and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the other threads try to get in meanwhile (a slow machine can only make this pass, never fail)
    release.set()
    for thread in threads:
        thread.join(60)
    assert peak == glue._Gate.CHECKS
    assert inside == 0


def test_caller_is_the_http_user(glue: types.ModuleType) -> None:
    basic = "Basic " + base64.b64encode(b"alice:pw:with:colons").decode()
    assert glue._caller({"authorization": basic}) == "alice"
    assert glue._caller({"authorization": "Bearer 1234"}) == "token"
    assert glue._caller({}) == "anonymous"
    assert glue._caller({"authorization": "Basic !!!"}) == "anonymous"


def test_a_resource_deleted_before_its_job_listed_it_is_404_any_other_failure_500(glue: types.ModuleType) -> None:
    """The anonymize route checks that the resource exists, then waits for its job: a study deleted in between is
    found missing by the job (``Job.not_found``), and the answer is 404 as for a study that never was."""

    class Exists:
        def exists(self, level: str, resource: str) -> bool:
            return True

    class Manager:
        def submit(self, job: Any) -> Any:
            source = job.resources[0]
            job.results = [ResourceResult(source, "Study", error="unknown resource")]
            if source == "deleted":
                job.not_found.add(source)
            job.done.set()
            return job

    glue._plugin = types.SimpleNamespace(
        config=AnonymizerConfig(), gate=glue._Gate(100, 1), route_client=Exists(), manager=Manager()
    )
    glue._ready.set()
    deleted = call(glue._anonymize, "POST", groups=("studies", "deleted"), body=b"{}", headers={})
    assert deleted.status == 404 and deleted.body["Message"] == "unknown resource: studies/deleted"
    # The same text in a result is no 404: only the job's own finding is.
    failed = call(glue._anonymize, "POST", groups=("studies", "other"), body=b"{}", headers={})
    assert failed.status == 500
