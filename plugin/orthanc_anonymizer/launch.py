"""``make run``: Orthanc in the foreground with ``orthanc-config/orthanc.json``, the plugin and the overrides.

``python -m orthanc_anonymizer.launch run`` writes the effective configuration (paths made absolute, environment
overrides applied) to ``$ORTHANC_DATA/orthanc.json`` and replaces itself with ``Orthanc <that file>``. The
integration tests build their configuration with :func:`effective_configuration` from the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import CHECKOUT

CONFIG_FILE = CHECKOUT / "orthanc-config" / "orthanc.json"
PYTHON_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPython.so"


class LaunchError(Exception):
    """An environment override or the configuration file is wrong."""


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "")
    if not text:
        return default
    try:
        port = int(text)
    except ValueError:
        raise LaunchError(f"{name}: {text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise LaunchError(f"{name}: {port} is not a port number")
    return port


def effective_configuration(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``orthanc-config/orthanc.json`` with absolute paths, then ``ORTHANC_HTTP_PORT``, ``ORTHANC_DICOM_PORT`` and
    ``ORTHANC_DATA`` from ``environ`` (default :data:`os.environ`), then ``overrides`` (top-level keys; the
    ``"Anonymizer"`` section is merged key by key)."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = json.loads(CONFIG_FILE.read_text(encoding="utf-8"))
    config["HttpPort"] = _port(environ, "ORTHANC_HTTP_PORT", int(config.get("HttpPort", 8042)))
    config["DicomPort"] = _port(environ, "ORTHANC_DICOM_PORT", int(config.get("DicomPort", 4242)))
    data = Path(environ.get("ORTHANC_DATA") or CHECKOUT / str(config.get("StorageDirectory", "data")))
    config["StorageDirectory"] = config["IndexDirectory"] = str(data.resolve())
    config["PythonScript"] = str((CHECKOUT / str(config.get("PythonScript", "plugin/entry.py"))).resolve())
    section = dict(config.get("Anonymizer", {}))
    profiles = section.get("ProfilesDirectory")
    if isinstance(profiles, str) and profiles and not Path(profiles).is_absolute():
        section["ProfilesDirectory"] = str((CHECKOUT / profiles).resolve())
    for key, value in (overrides or {}).items():
        if key == "Anonymizer":
            section.update(value)
        else:
            config[key] = value
    config["Anonymizer"] = section
    return config


def orthanc_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run Orthanc with: ``TCP_NODELAY=1`` (else each DICOM instance waits ~50 ms on Nagle)."""
    return {**(os.environ if environ is None else environ), "TCP_NODELAY": "1"}


def write_configuration(config: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orthanc_anonymizer.launch", description=__doc__)
    parser.add_argument("command", choices=["run", "config"], help="run Orthanc, or print the effective config")
    arguments = parser.parse_args(argv)
    try:
        config = effective_configuration()
    except LaunchError as error:
        parser.exit(2, f"error: {error}\n")
    if arguments.command == "config":
        print(json.dumps(config, indent=2))
        return 0
    orthanc = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(orthanc).exists():
        parser.exit(2, "error: Orthanc is not installed (make apt)\n")
    if not Path(PYTHON_PLUGIN).exists():
        parser.exit(2, f"error: {PYTHON_PLUGIN} is missing (Debian package orthanc-python; make apt)\n")
    path = write_configuration(config, Path(config["StorageDirectory"]) / "orthanc.json")
    print(
        f"Orthanc on http://localhost:{config['HttpPort']} (DICOM {config['DicomPort']}), configuration {path}",
        flush=True,
    )
    os.execve(orthanc, [orthanc, str(path)], orthanc_environment())
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
