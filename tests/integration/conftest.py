"""Fixtures of the integration tests: ``orthanc``, one real Orthanc for the whole session, and ``server_factory``
for tests that need their own (authentication, restarts, wrong settings). The server itself is in
:mod:`orthanc_server`; when a test fails, the tail of each server's log is added to the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from orthanc_server import _SERVERS, ORTHANC, SECRET, OrthancServer, free_port

from orthanc_anonymizer.server.launch import PYTHON_PLUGIN

pytestmark = pytest.mark.integration
__all__ = ["ORTHANC", "SECRET", "OrthancServer", "free_port"]


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    if not Path(PYTHON_PLUGIN).exists():
        pytest.fail(f"{PYTHON_PLUGIN} is missing: run `make apt`")
    server = OrthancServer(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., OrthancServer]]:
    """Servers of a test's own (``make(name, overrides=..., secret=..., auth=...)``), stopped after it."""
    servers: list[OrthancServer] = []

    def make(name: str, **kwargs: Any) -> OrthancServer:
        server = OrthancServer(tmp_path / name, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in list(_SERVERS):
            report.sections.append((f"Orthanc log ({server.folder.name})", server.log_tail(80)))
