"""``make run``: Orthanc in the foreground with ``orthanc-config/orthanc.json``, the plugin and the overrides.

``python -m orthanc_anonymizer.server.launch run`` writes the effective configuration (paths made absolute, environment
overrides applied) to ``$ORTHANC_DATA/orthanc.json`` and replaces itself with ``Orthanc <that file>``. The
integration tests build their configuration with :func:`effective_configuration` from the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orthanc_anonymizer.server.config import CHECKOUT

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


REMOTE_ACCESS = "ORTHANC_REMOTE_ACCESS"
USERS_FILE = "ORTHANC_USERS_FILE"


def _remote_access(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``ORTHANC_REMOTE_ACCESS=1`` adds: the HTTP API open to other hosts, only with authentication
    (the users of ``ORTHANC_USERS_FILE``) and a real secret. Empty when it is not set: loopback only."""
    flag = environ.get(REMOTE_ACCESS, "").strip().lower()
    if flag in ("", "0", "false", "no"):
        return {}
    if flag not in ("1", "true", "yes"):
        raise LaunchError(f"{REMOTE_ACCESS}: {flag!r} is neither 1 nor 0")
    if not environ.get("ANONYMIZER_SECRET"):
        raise LaunchError(
            f"{REMOTE_ACCESS}: needs ANONYMIZER_SECRET; the development secret is public, so anyone could recompute "
            "the pseudonyms and UIDs of copies made with it"
        )
    path_text = environ.get(USERS_FILE, "")
    if not path_text:
        raise LaunchError(f'{REMOTE_ACCESS}: needs {USERS_FILE}, a JSON file of users and passwords {{"user": "pw"}}')
    try:
        users = json.loads(Path(path_text).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LaunchError(f"{USERS_FILE}: {path_text} cannot be read as JSON ({type(error).__name__})") from None
    if (
        not isinstance(users, dict)
        or not users
        or not all(isinstance(user, str) and user and isinstance(pw, str) and pw for user, pw in users.items())
    ):
        raise LaunchError(f'{USERS_FILE}: expected a non-empty JSON object of users and passwords {{"user": "pw"}}')
    return {"RemoteAccessAllowed": True, "AuthenticationEnabled": True, "RegisteredUsers": users}


def effective_configuration(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``orthanc-config/orthanc.json`` with absolute paths, then ``ORTHANC_HTTP_PORT``, ``ORTHANC_DICOM_PORT``,
    ``ORTHANC_DATA`` and ``ORTHANC_REMOTE_ACCESS`` (with ``ORTHANC_USERS_FILE``) from ``environ`` (default
    :data:`os.environ`), then ``overrides`` (top-level keys; the ``"Anonymizer"`` section is merged key by key)."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = json.loads(CONFIG_FILE.read_text(encoding="utf-8"))
    config["HttpPort"] = _port(environ, "ORTHANC_HTTP_PORT", int(config.get("HttpPort", 8042)))
    config["DicomPort"] = _port(environ, "ORTHANC_DICOM_PORT", int(config.get("DicomPort", 4242)))
    data = Path(environ.get("ORTHANC_DATA") or CHECKOUT / str(config.get("StorageDirectory", "data")))
    config["StorageDirectory"] = config["IndexDirectory"] = str(data.resolve())
    config["PythonScript"] = str((CHECKOUT / str(config.get("PythonScript", "plugin/entry.py"))).resolve())
    section = dict(config.get("Anonymizer", {}))
    remote = _remote_access(environ)
    if remote:
        config.update(remote)
        # Orthanc 1.13 listens on the addresses of "HttpBindAddresses" only (loopback in orthanc.json); 1.10 and 1.12
        # ignore the setting and listen everywhere, refusing other hosts by "RemoteAccessAllowed".
        config.pop("HttpBindAddresses", None)
        section["AllowDevelopmentSecret"] = False
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
    """Write ``config`` readable by its owner only: it may hold ``RegisteredUsers`` and their passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file written earlier with a wider mode is narrowed too
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(json.dumps(config, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orthanc_anonymizer.server.launch", description=__doc__)
    parser.add_argument("command", choices=["run", "config"], help="run Orthanc, or print the effective config")
    arguments = parser.parse_args(argv)
    try:
        config = effective_configuration()
    except LaunchError as error:
        parser.exit(2, f"error: {error}\n")
    if arguments.command == "config":
        print(json.dumps(config, indent=2))
        return 0
    # ORTHANC_COMMAND: another Orthanc (make test-compat runs trixie's and forky's through tools/compat/run-in-*.sh).
    command = shlex.split(os.environ.get("ORTHANC_COMMAND", "")) or [shutil.which("Orthanc") or "/usr/sbin/Orthanc"]
    orthanc = shutil.which(command[0]) or command[0]
    if not Path(orthanc).exists():
        parser.exit(2, "error: Orthanc is not installed (make apt)\n")
    if not Path(PYTHON_PLUGIN).exists():
        parser.exit(2, f"error: {PYTHON_PLUGIN} is missing (Debian package orthanc-python; make apt)\n")
    path = write_configuration(config, Path(config["StorageDirectory"]) / "orthanc.json")
    reach = (
        "open to other hosts, with authentication"
        if config.get("RemoteAccessAllowed")
        else f"from this host only; {REMOTE_ACCESS}=1 opens it (README)"
    )
    print(
        f"Orthanc on http://localhost:{config['HttpPort']} ({reach}; DICOM {config['DicomPort']}), "
        f"configuration {path}",
        flush=True,
    )
    os.execve(orthanc, [orthanc, *command[1:], str(path)], orthanc_environment())
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
