"""Orthanc Explorer in Debian's headless Chromium (Playwright, ``executable_path=/usr/bin/chromium``; never a
downloaded browser), against real Orthancs with the plugin: one open, one with ``AuthenticationEnabled``, and the open
one again behind a reverse proxy under ``/pacs/``. Screenshots of each step go to ``tests/artifacts/browser/<test>/``.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD, USER, OrthancServer, integration
from reverse_proxy import PrefixProxy


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: install Debian's chromium (make apt)")
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.get_closest_marker("browser") is not None:
        for server in list(integration._SERVERS):
            report.sections.append((f"Orthanc log ({server.folder.name})", server.log_tail(60)))


# -- servers ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def open_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Orthanc with the plugin and no authentication."""
    server = OrthancServer(tmp_path_factory.mktemp("browser-open")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Orthanc with the plugin, ``AuthenticationEnabled`` and one registered user."""
    overrides = {"AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}}
    server = OrthancServer(tmp_path_factory.mktemp("browser-auth"), overrides, auth=(USER, PASSWORD)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefix_proxy(open_orthanc: Any) -> Iterator[PrefixProxy]:
    """``/pacs/`` on its own port -> the open Orthanc's root."""
    proxy = PrefixProxy(open_orthanc.url, "/pacs").start()
    yield proxy
    proxy.stop()


# -- browser ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make apt)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # expect() waits for its condition; 5 s by default, too short under load
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, empty --user-data-dir of its own (and refuses one in ``args``).
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest, page_errors: list[str]) -> Iterator[Any]:
    """``new_page(http_credentials=None)``: a page in a fresh context; JavaScript errors are collected in
    ``page_errors`` and fail the test."""
    contexts: list[Any] = []

    def make(http_credentials: dict[str, str] | None = None) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, http_credentials=http_credentials)
        # Waits end on conditions (an element shown, a URL reached); the bound is for a real hang, not a slow machine.
        context.set_default_timeout(60_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not page_errors, f"JavaScript errors in the page: {page_errors}"


@pytest.fixture
def steps_folder(request: pytest.FixtureRequest) -> Path:
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
