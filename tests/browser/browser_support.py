"""What the browser tests share: the integration suite's Orthanc fixture code (loaded by path: ``tests/integration``
is not a package), a generated study to upload, and numbered screenshots."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = TESTS / "artifacts" / "browser"
# As root, in a sandbox with no network: no sandboxing, no GPU, and nothing that phones home (each refused
# connection costs time, many at once).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER, PASSWORD = "radiographer", "browser-test-password"


def _load(name: str, path: Path) -> ModuleType:
    """Import ``path`` as module ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


integration = _load("orthanc_server", TESTS / "integration" / "orthanc_server.py")
study_generator = _load("integration_study_generator", TESTS / "integration" / "study_generator.py")
OrthancServer = integration.OrthancServer


def upload_study(server: Any, name: str = "Testperson^Vincenzo", patient_id: str = "PID-7731-4420") -> str:
    """A generated study of 2 series x 2 CT images of a made-up patient; its Orthanc ID."""
    patient = study_generator.Patient(name=name, id=patient_id)
    study: str = server.upload_study(study_generator.make_study(patient, series=2, per_series=2))
    return study


class Steps:
    """Numbered screenshots of one test under ``tests/artifacts/browser/<test>/``."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.number = 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def shot(self, name: str) -> Path:
        self.number += 1
        path = self.folder / f"{self.number:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def shot_of(self, locator: Any, name: str) -> Path:
        """Only what ``locator`` covers (in the viewport), e.g. the dialog for the README."""
        self.number += 1
        path = self.folder / f"{self.number:02d}-{name}.png"
        box = locator.bounding_box()
        assert box is not None, f"{name}: nothing to photograph"
        self.page.screenshot(path=str(path), clip=box)
        return path
