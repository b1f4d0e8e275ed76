"""The part of orthanc-python's ``orthanc`` module that the plugin uses, typed for mypy (only
``orthanc_anonymizer/server/glue.py`` imports it). Written from orthanc-python's own generated stub and checked
against the three versions the plugin is tested on: 4.0 (Orthanc 1.10, Debian bookworm), 5.0 (1.12, trixie) and
7.1 (1.13, forky). Where they differ, both forms are here and the glue handles each:

- ``RestOutput.SendHttpStatus`` takes ``(status, body)`` from 5.0 on; 4.0 wants ``(status, body, body_size)``;
- a REST callback gets the request as keywords (``method``, ``groups``, ``get``, ``headers``, ``body``), some of
  them absent for some methods, so the glue reads them with ``request.get``.
"""

import enum
from typing import Any, Protocol, overload

class InstanceOrigin(enum.Enum):
    """Where a received instance comes from (``OrthancPluginInstanceOrigin``)."""

    UNKNOWN = 1
    DICOM_PROTOCOL = 2
    REST_API = 3
    PLUGIN = 4
    LUA = 5
    WEB_DAV = 6

class ReceivedInstanceAction(enum.Enum):
    """What Orthanc does with a received instance (``OrthancPluginReceivedInstanceAction``)."""

    KEEP_AS_IS = 1
    MODIFY = 2
    DISCARD = 3

class RestOutput:
    """The answer to a REST request."""

    def AnswerBuffer(self, answer: bytes | str, mime_type: str) -> None: ...
    @overload
    def SendHttpStatus(self, status: int, body: bytes | str) -> None: ...
    @overload
    def SendHttpStatus(self, status: int, body: bytes | str, body_size: int) -> None: ...
    def SendMethodNotAllowed(self, allowed_methods: str) -> None: ...

# The two callback protocols exist in this stub only (for annotations), not in the module Orthanc provides.

class RestCallback(Protocol):
    """A REST route: ``uri`` is the path; ``request`` holds ``method`` (``"GET"``...), ``groups`` (the regular
    expression's groups), ``get`` (the query's arguments), ``headers`` (lower-case names) and ``body`` (bytes)."""

    def __call__(self, output: RestOutput, uri: str, **request: Any) -> None: ...

class ReceivedInstanceCallback(Protocol):
    """Runs on Orthanc's storage thread before an instance is stored; returns what to store instead (``MODIFY``)."""

    def __call__(
        self, received_dicom: bytes, origin: InstanceOrigin, /
    ) -> tuple[ReceivedInstanceAction, bytes | None]: ...

def LogInfo(message: str) -> None: ...
def LogWarning(message: str) -> None: ...
def LogError(message: str) -> None: ...
def GetConfiguration() -> str:
    """Orthanc's whole configuration, as JSON text."""

def GenerateRestApiAuthorizationToken() -> str:
    """A token (an ``Authorization`` header's value) that Orthanc's REST API accepts from this plugin."""

def RegisterRestCallback(path_regular_expression: str, callback: RestCallback) -> None: ...
def RegisterReceivedInstanceCallback(callback: ReceivedInstanceCallback) -> None: ...
def ExtendOrthancExplorer(javascript: str) -> None: ...
