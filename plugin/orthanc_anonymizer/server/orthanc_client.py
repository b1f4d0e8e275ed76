"""Orthanc's REST API over loopback HTTP, for the plugin's worker threads.

Why HTTP and not ``orthanc.RestApi*``: orthanc-python 4.0 keeps the GIL during SDK calls, so an SDK REST call made
from Python while Orthanc runs another Python callback can deadlock the server. Requests over a socket release the
GIL while they wait, and Orthanc serves them on its own HTTP threads like any client's. The plugin authenticates
with the token from ``orthanc.GenerateRestApiAuthorizationToken()`` (an ``Authorization`` header).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LEVELS = {"patients": "Patient", "studies": "Study", "series": "Series", "instances": "Instance"}
"""URI segment of each level -> Orthanc's name of it."""
SEGMENTS = {name: segment for segment, name in LEVELS.items()}


class OrthancError(Exception):
    """Orthanc answered an error. ``status`` is the HTTP status; the message names the request, never PHI."""

    def __init__(self, method: str, path: str, status: int, detail: str = "") -> None:
        super().__init__(f"{method} {path}: HTTP {status}{': ' + detail if detail else ''}")
        self.status = status


class ResourceNotFound(OrthancError):
    """Orthanc has no such resource (HTTP 404)."""


class OrthancUnreachable(OrthancError):
    """No connection to Orthanc: on loopback, that means it is stopping."""


@dataclass(frozen=True)
class Response:
    """An answer of Orthanc, read whole."""

    status: int
    headers: http.client.HTTPMessage
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
"""What a kept-alive connection that Orthanc closed meanwhile (``KeepAliveTimeout``) fails with."""


class OrthancClient:
    """A small, thread-safe client of Orthanc's REST API (one kept-alive connection per thread).

    Built on :mod:`http.client`, not ``requests``: inside Orthanc every line of Python runs under the GIL that the
    plugin's other threads wait for, and ``requests`` costs 3-4 times the CPU of a bare request (measured on loopback:
    a metadata PUT 1.1-1.5 ms against 0.2-0.3 ms; a 530 KB download 2.6 against 0.65 ms).
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        keep_alive: bool = True,
        verify_tls: bool = True,
    ) -> None:
        """``keep_alive=False``: a new connection for every request, closed after it (an idle keep-alive
        connection holds one of Orthanc's HTTP threads)."""
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path
        # Orthanc gzips answers for clients that accept it: slow for DICOM files (10x on loopback), useless here.
        self.headers = {"Accept-Encoding": "identity", **(headers or {})}
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.verify_tls = verify_tls
        self._context: ssl.SSLContext | None = None
        if self._tls:
            self._context = ssl.create_default_context()
            if not verify_tls:  # loopback to this very Orthanc: its certificate names the public host
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._local = threading.local()

    def endpoint(self) -> dict[str, Any]:
        """What another process needs to make the same client (:meth:`from_endpoint`)."""
        return {
            "base_url": self.base_url,
            "headers": {key: value for key, value in self.headers.items() if key != "Accept-Encoding"},
            "timeout": self.timeout,
            "verify_tls": self.verify_tls,
        }

    @classmethod
    def from_endpoint(cls, endpoint: Mapping[str, Any]) -> OrthancClient:
        return cls(**endpoint)

    def _connect(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._tls:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        connection.connect()
        assert connection.sock is not None
        # Small requests (metadata, JSON) go out at once instead of waiting for an ACK (Nagle).
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before (then it may have been closed by Orthanc)."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            # Readable while idle means closed by the peer (Orthanc's KeepAliveTimeout): do not reuse it.
            readable, _, _ = select.select([connection.sock], [], [], 0)
            if not readable:
                return connection, True
            connection.close()
        connection = self._connect()
        if self.keep_alive:
            self._local.connection = connection
        return connection, False

    def close(self) -> None:
        """Close this thread's connection (threads that end should call it)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _exchange(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        """One request and its whole answer; a reused connection found closed is replaced once."""
        for attempt in (1, 2):
            try:
                connection, reused = self._connection()
            except OSError:
                raise OrthancUnreachable(method, path, 0, "no connection") from None
            try:
                connection.request(method, self._prefix + path, body=body, headers={**self.headers, **headers})
                answer = connection.getresponse()
                content = answer.read()
                response = Response(answer.status, answer.headers, content)
                if answer.will_close or not self.keep_alive:
                    connection.close()
                return response
            except _STALE:
                connection.close()
                if not reused or attempt == 2:
                    raise OrthancUnreachable(method, path, 0, "connection closed") from None
            except TimeoutError:
                connection.close()
                raise OrthancError(method, path, 0, f"no answer within {self.timeout:g} s") from None
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                raise OrthancUnreachable(method, path, 0, type(error).__name__) from None
        raise AssertionError("unreachable")

    def request(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        response = self._exchange(method, path, data, headers or {})
        if response.status == 404:
            raise ResourceNotFound(method, path, 404)
        if response.status >= 400:
            detail = ""
            try:
                answer = response.json()
                if isinstance(answer, dict):
                    detail = str(answer.get("Message", ""))
            except ValueError:
                pass
            raise OrthancError(method, path, response.status, detail)
        return response

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()

    def get_bytes(self, path: str) -> bytes:
        """A binary answer (a DICOM file), read from the socket in one piece."""
        return self.request("GET", path).content

    def exists(self, level: str, resource_id: str) -> bool:
        """Whether ``/{level}/{resource_id}`` exists (``level`` is a URI segment: ``studies``...)."""
        try:
            self.request("GET", f"/{level}/{resource_id}")
        except ResourceNotFound:
            return False
        return True

    def instance_ids(self, level: str, resource_id: str) -> list[tuple[str, str]]:
        """``(instance ID, its series' ID)`` of every instance of a resource (``ResourceNotFound`` if it does not
        exist). Read from the answers that list children by ID only, one per study and series: never the tags of
        every instance (``/studies/{id}/instances`` is ~1 KB of JSON an instance, for Orthanc to build and for
        Python to parse, under the GIL)."""
        if level == "instances":
            return [(resource_id, str(self.get_json(f"/instances/{resource_id}")["ParentSeries"]))]
        if level == "series":
            instances = self.get_json(f"/series/{resource_id}")["Instances"]
            return [(str(item), resource_id) for item in instances]
        if level == "studies":
            series = [str(item) for item in self.get_json(f"/studies/{resource_id}")["Series"]]
        else:
            studies = [str(item) for item in self.get_json(f"/{level}/{resource_id}")["Studies"]]
            series = [str(item) for study in studies for item in self._children("studies", study, "Series")]
        return [(str(item), one) for one in series for item in self._children("series", one, "Instances")]

    def _children(self, level: str, resource_id: str, key: str) -> list[Any]:
        """The IDs of a resource's children; none if it was deleted meanwhile."""
        try:
            return list(self.get_json(f"/{level}/{resource_id}")[key])
        except ResourceNotFound:
            return []

    def count_instances(self, level: str, resource_id: str) -> int:
        """How many instances a resource has (``ResourceNotFound`` if it does not exist)."""
        if level == "instances":
            self.request("GET", f"/instances/{resource_id}")
            return 1
        return int(self.get_json(f"/{level}/{resource_id}/statistics")["CountInstances"])

    def instance_file(self, instance_id: str) -> bytes:
        return self.get_bytes(f"/instances/{instance_id}/file")

    def store_instance(self, data: bytes) -> dict[str, Any]:
        """POST /instances: ``{"ID", "ParentSeries", "ParentStudy", "ParentPatient", "Status"}``."""
        answer = self.request("POST", "/instances", data=data, headers={"Content-Type": "application/dicom"}).json()
        if not isinstance(answer, dict):
            raise OrthancError("POST", "/instances", 200, "unexpected answer")
        return answer

    def stored_md5(self, instance_id: str) -> str:
        """The MD5 Orthanc computed of the stored DICOM file (as received, before any storage compression)."""
        return self.request("GET", f"/instances/{instance_id}/attachments/dicom/md5").text.strip()

    def put_metadata(self, level: str, resource_id: str, name: str, value: str) -> None:
        """Set a metadata; with ``CheckRevisions`` on, an existing value is replaced at its current revision."""
        path = f"/{level}/{resource_id}/metadata/{name}"
        try:
            self.request("PUT", path, data=value.encode("utf-8"))
        except OrthancError as error:
            if error.status not in (409, 412, 428):
                raise
            revision = self.request("GET", path).headers.get("ETag", "")
            self.request("PUT", path, data=value.encode("utf-8"), headers={"If-Match": revision})

    def get_metadata(self, level: str, resource_id: str, name: str) -> str | None:
        try:
            return self.request("GET", f"/{level}/{resource_id}/metadata/{name}").text
        except ResourceNotFound:
            return None

    def delete(self, level: str, resource_id: str) -> None:
        self.request("DELETE", f"/{level}/{resource_id}")

    def post_json(self, path: str, body: object) -> Any:
        return self.request("POST", path, data=json.dumps(body).encode("utf-8")).json()
