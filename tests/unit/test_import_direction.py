"""Imports run one way: server -> pipeline -> deid, and cli (and the Python API) -> pipeline -> deid.

Read from the source, not from what happens to be imported at run time: every ``import`` and ``from ... import``
of every module, those inside functions and under ``TYPE_CHECKING`` included, relative ones resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "plugin" / "orthanc_anonymizer"


def module_name(path: Path) -> str:
    parts = ["orthanc_anonymizer", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` names in an import statement (``from a import b`` names ``a`` and ``a.b``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


MODULES = {module_name(path): imported(path) for path in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def offending(importer_prefix: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for module, names in MODULES.items():
        if within(module, importer_prefix):
            bad = sorted(name for name in names if any(within(name, prefix) for prefix in forbidden))
            if bad:
                found[module] = bad
    return found


SERVER = "orthanc_anonymizer.server"
PIPELINE = "orthanc_anonymizer.pipeline"
CLI = "orthanc_anonymizer.cli"
API = "orthanc_anonymizer.anonymizer"


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("orthanc_anonymizer.deid", (SERVER, PIPELINE, CLI, API)),
        (PIPELINE, (SERVER, CLI, API)),
        (CLI, (SERVER,)),
        (API, (SERVER, CLI)),
        ("orthanc_anonymizer.audit", (SERVER, PIPELINE, CLI)),
        ("orthanc_anonymizer.errors", (SERVER, PIPELINE, CLI, "orthanc_anonymizer.deid")),
        ("orthanc_anonymizer.logs", (SERVER, PIPELINE, CLI, "orthanc_anonymizer.deid")),
        ("orthanc_anonymizer.defaults", (SERVER, PIPELINE, CLI, "orthanc_anonymizer.deid")),
    ],
)
def test_imports_run_one_way(importer: str, forbidden: tuple[str, ...]) -> None:
    assert any(within(module, importer) for module in MODULES), f"no module {importer}"
    assert offending(importer, forbidden) == {}


def test_only_the_glue_imports_orthanc() -> None:
    importers = sorted(module for module, names in MODULES.items() if "orthanc" in names)
    assert importers == ["orthanc_anonymizer.server.glue"]


def test_the_transports_go_through_the_pipeline() -> None:
    """The reading is not vacuous: the layers above the engine do reach it through the pipeline."""
    for transport in (CLI, API, "orthanc_anonymizer.server.workers", "orthanc_anonymizer.server.gateway"):
        assert PIPELINE in MODULES[transport], transport
    assert "orthanc_anonymizer.deid.engine" in MODULES[PIPELINE]
