"""Orthanc's REST API over loopback HTTP, for the plugin's worker threads.

Why HTTP and not ``orthanc.RestApi*``: orthanc-python 4.0 keeps the GIL during SDK calls, so an SDK REST call made
from Python while Orthanc runs another Python callback can deadlock the server. Requests over a socket release the
GIL while they wait, and Orthanc serves them on its own HTTP threads like any client's. The plugin authenticates
with the token from ``orthanc.GenerateRestApiAuthorizationToken()`` (an ``Authorization`` header).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import requests
import urllib3

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


class OrthancClient:
    """A small, thread-safe client of Orthanc's REST API (one HTTP session per thread)."""

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
        # Orthanc gzips answers for clients that accept it: slow for DICOM files (10x on loopback), useless here.
        self.headers = {"Accept-Encoding": "identity", **(headers or {})}
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.verify_tls = verify_tls
        if not verify_tls:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback: no proxies nor netrc to look up (~3 ms a request)
            session.verify = self.verify_tls
            session.headers.update(self.headers)
            if self.keep_alive:
                self._local.session = session
        return session

    def close(self) -> None:
        """Close this thread's connection (threads that end should call it)."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        session = self._session()
        try:
            response = session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.ConnectionError:
            raise OrthancUnreachable(method, path, 0, "no connection") from None
        finally:
            if not self.keep_alive:
                session.close()
        if response.status_code == 404:
            response.close()  # a streamed answer's body is not read: do not leave it on the connection
            raise ResourceNotFound(method, path, 404)
        if response.status_code >= 400:
            detail = ""
            try:
                answer = response.json()
                if isinstance(answer, dict):
                    detail = str(answer.get("Message", ""))
            except ValueError:
                pass
            raise OrthancError(method, path, response.status_code, detail)
        return response

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()

    def get_bytes(self, path: str) -> bytes:
        """A binary answer (a DICOM file), read from the socket in one piece: ``Response.content`` reads it 10 KB
        at a time, ~1 ms more CPU (under the GIL, inside Orthanc) for a 530 KB image."""
        if not self.keep_alive:
            return self.request("GET", path).content
        response = self.request("GET", path, stream=True)
        try:
            data: bytes = response.raw.read(decode_content=True)
        finally:
            response.close()  # after a complete read the connection is back in the pool already; else dropped
        return data

    def exists(self, level: str, resource_id: str) -> bool:
        """Whether ``/{level}/{resource_id}`` exists (``level`` is a URI segment: ``studies``...)."""
        try:
            self.request("GET", f"/{level}/{resource_id}")
        except ResourceNotFound:
            return False
        return True

    def instances_of(self, level: str, resource_id: str) -> list[dict[str, Any]]:
        """The instances of a resource, each ``{"ID", "ParentSeries", ...}``; a list of one at instance level."""
        if level == "instances":
            return [self.get_json(f"/instances/{resource_id}")]
        answer = self.get_json(f"/{level}/{resource_id}/instances")
        return list(answer)

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
        answer = self.request(
            "POST", "/instances", data=data, headers={"Content-Type": "application/dicom", "Expect": ""}
        ).json()
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
        return self.request("POST", path, data=json.dumps(body)).json()
