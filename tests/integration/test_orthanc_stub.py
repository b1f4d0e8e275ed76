"""stubs/orthanc.pyi, which mypy checks the glue against, names only what the ``orthanc`` module of the running
orthanc-python has: a probe script run by a real Orthanc (4.0 here; 5.0 and 7.1 under ``make test-compat``) looks
up every function, class, enumeration member and method the stub declares."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
from orthanc_server import OrthancServer

pytestmark = pytest.mark.integration
STUB = Path(__file__).resolve().parents[2] / "stubs" / "orthanc.pyi"

PROBE = """
import json
import orthanc

found = {}
for name, members in json.loads(NAMES).items():
    thing = getattr(orthanc, name, None)
    found[name] = thing is not None
    for member in members:
        found[name + "." + member] = thing is not None and hasattr(thing, member)
with open(RESULT, "w") as stream:
    json.dump(found, stream)
"""


def declared() -> dict[str, list[str]]:
    """The stub's module-level functions and classes (the callback protocols, typing only, left out), with the
    members of each class."""
    names: dict[str, list[str]] = {}
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = []
        elif isinstance(node, ast.ClassDef) and not any(ast.unparse(base) == "Protocol" for base in node.bases):
            members = [item.name for item in node.body if isinstance(item, ast.FunctionDef)]
            members += [
                target.id
                for item in node.body
                if isinstance(item, ast.Assign)
                for target in item.targets
                if isinstance(target, ast.Name)
            ]
            names[node.name] = sorted(set(members))
    return names


def test_every_name_the_stub_declares_exists_in_the_running_orthanc_python(tmp_path: Path) -> None:
    names = declared()
    assert {"RestOutput", "ReceivedInstanceAction", "InstanceOrigin", "RegisterRestCallback"} <= set(names)
    assert "SendHttpStatus" in names["RestOutput"] and "MODIFY" in names["ReceivedInstanceAction"]
    result = tmp_path / "found.json"
    script = tmp_path / "probe.py"
    script.write_text(f"NAMES = {json.dumps(json.dumps(names))}\nRESULT = {str(result)!r}\n{PROBE}", encoding="utf-8")
    server = OrthancServer(tmp_path / "orthanc", overrides={"PythonScript": str(script)}).start()
    try:
        deadline = time.monotonic() + 60
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert result.exists(), server.log_tail()
        found = json.loads(result.read_text(encoding="utf-8"))
    finally:
        server.stop()
    missing = sorted(name for name, present in found.items() if not present)
    assert missing == []
    assert len(found) == len(names) + sum(len(members) for members in names.values())
