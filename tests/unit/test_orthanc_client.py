"""The loopback client against a small real HTTP server that answers like Orthanc (no Orthanc needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydicom.data import get_testdata_file

from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import InstanceTask
from orthanc_anonymizer.server.orthanc_client import OrthancClient, OrthancError, OrthancUnreachable, ResourceNotFound
from orthanc_anonymizer.server.workers import fetch_and_anonymize

CT_SMALL = open(get_testdata_file("CT_small.dcm") or "", "rb").read()  # noqa: SIM115
RESOURCES: dict[str, Any] = {
    "/patients/p1": {"Studies": ["st1", "st2"]},
    "/studies/st1": {"Series": ["se1", "se2"]},
    "/studies/st2": {"Series": ["gone"]},  # deleted while the job lists it
    "/series/se1": {"Instances": ["i1", "i2"]},
    "/series/se2": {"Instances": ["i3"]},
    "/instances/i1": {"ParentSeries": "se1"},
}


class FakeOrthancHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Orthanc
    connections: set[int] = set()
    requests: list[tuple[str, str, dict[str, str], bytes]] = []
    metadata_revision = "7"
    close_after_answer = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        if self.close_after_answer:  # as Orthanc after KeepAliveTimeout: closed without a word
            self.close_connection = True

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakeOrthancHandler.connections.add(self.client_address[1])
        FakeOrthancHandler.requests.append((self.command, self.path, dict(self.headers), body))
        if self.path in RESOURCES and self.command == "GET":
            self._answer(200, json.dumps(RESOURCES[self.path]).encode())
        elif self.path == "/instances/i1/file":
            self._answer(200, CT_SMALL, "application/dicom")
        elif self.path == "/instances/locked/metadata/Name" and self.command == "PUT":
            if self.headers.get("If-Match") == self.metadata_revision:
                self._answer(200, b"{}")
            else:
                self._answer(409, json.dumps({"Message": "revision"}).encode())
        elif self.path == "/instances/locked/metadata/Name":
            self._answer(200, b"old", "text/plain", ETag=self.metadata_revision)
        elif "/metadata/" in self.path and self.command == "PUT":
            self._answer(200, b"")
        elif self.path == "/broken":
            self._answer(500, json.dumps({"Message": "Internal error"}).encode())
        else:
            self._answer(404, json.dumps({"Message": "Unknown resource"}).encode())

    do_GET = do_PUT = do_POST = do_DELETE = _handle


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    FakeOrthancHandler.connections = set()
    FakeOrthancHandler.requests = []
    FakeOrthancHandler.close_after_answer = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOrthancHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _client(server: ThreadingHTTPServer, **options: Any) -> OrthancClient:
    return OrthancClient(f"http://127.0.0.1:{server.server_address[1]}", {"Authorization": "token"}, **options)


def test_requests_of_a_thread_share_one_kept_alive_connection(server: ThreadingHTTPServer) -> None:
    client = _client(server)
    assert client.get_json("/series/se1") == {"Instances": ["i1", "i2"]}
    assert client.instance_file("i1") == CT_SMALL
    client.put_metadata("instances", "i1", "Name", "value")
    assert len(FakeOrthancHandler.connections) == 1
    method, path, headers, body = FakeOrthancHandler.requests[-1]
    assert (method, path, body) == ("PUT", "/instances/i1/metadata/Name", b"value")
    assert headers["Authorization"] == "token" and headers["Accept-Encoding"] == "identity"
    client.close()


def test_a_connection_closed_by_orthanc_is_replaced(server: ThreadingHTTPServer) -> None:
    FakeOrthancHandler.close_after_answer = True
    client = _client(server)
    for _ in range(3):
        assert client.get_json("/studies/st1") == {"Series": ["se1", "se2"]}
    assert len(FakeOrthancHandler.connections) == 3


def test_without_keep_alive_each_request_has_its_connection(server: ThreadingHTTPServer) -> None:
    client = _client(server, keep_alive=False)
    assert client.exists("studies", "st1") and not client.exists("studies", "nope")
    assert len(FakeOrthancHandler.connections) == 2


def test_errors_are_typed_and_name_the_request(server: ThreadingHTTPServer) -> None:
    client = _client(server)
    with pytest.raises(ResourceNotFound, match="GET /studies/nope: HTTP 404"):
        client.get_json("/studies/nope")
    with pytest.raises(OrthancError, match="GET /broken: HTTP 500: Internal error") as error:
        client.get_json("/broken")
    assert error.value.status == 500
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(OrthancUnreachable):
        OrthancClient(f"http://127.0.0.1:{port}").get_json("/system")


def test_metadata_with_revisions_is_replaced_at_its_revision(server: ThreadingHTTPServer) -> None:
    _client(server).put_metadata("instances", "locked", "Name", "new")
    assert FakeOrthancHandler.requests[-1][2]["If-Match"] == "7"


def test_instances_are_listed_by_id_series_by_series(server: ThreadingHTTPServer) -> None:
    client = _client(server)
    expected = [("i1", "se1"), ("i2", "se1"), ("i3", "se2")]
    assert client.instance_ids("patients", "p1") == expected
    assert client.instance_ids("studies", "st1") == expected
    assert client.instance_ids("series", "se2") == [("i3", "se2")]
    assert client.instance_ids("instances", "i1") == [("i1", "se1")]
    with pytest.raises(ResourceNotFound):
        client.instance_ids("studies", "nope")
    assert not any(
        "/instances?" in path or path.endswith("/instances") for _, path, _, _ in FakeOrthancHandler.requests
    )


def test_a_worker_downloads_the_original_itself(server: ThreadingHTTPServer) -> None:
    endpoint = _client(server).endpoint()
    task = InstanceTask(settings=_settings())
    fetched = fetch_and_anonymize(endpoint, "i1", task)
    assert fetched.outcome is not None and fetched.outcome.error is None and fetched.outcome.data
    missing = fetch_and_anonymize(endpoint, "nope", task)
    assert missing.outcome is None and "HTTP 404" in str(missing.read_error) and not missing.unreachable
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    gone = fetch_and_anonymize({**endpoint, "base_url": f"http://127.0.0.1:{port}/stopped"}, "i1", task)
    assert gone.outcome is None and gone.unreachable


def _settings() -> Any:
    from orthanc_anonymizer.deid.engine import AnonymizationSettings

    return AnonymizationSettings(profile=basic_profile(), hasher=KeyedHasher(b"unit-test-secret"))
