"""A throwaway PostgreSQL cluster of the host's server (Debian ``postgresql``) on a free loopback port.

Used by the scale-out tests (two Orthancs on one index), the production configuration's test and the compat tests
(loaded by path there). ``initdb`` runs as the ``postgres`` user, in a folder made outside pytest's ``tmp_path``,
which that user may not enter; the cluster is stopped (``immediate``) and its folder removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

POSTGRESQL_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=None, key=lambda path: int(path.parent.name))
"""Debian's PostgreSQL server on the host (bookworm's 15)."""
INDEX_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
"""Debian's ``orthanc-postgresql`` (bookworm's 4.0; in the compat roots trixie's 5.0 and forky's 5.0), at the same path
in each."""

needs_postgresql = pytest.mark.skipif(
    POSTGRESQL_BIN is None or os.geteuid() != 0,
    reason="no PostgreSQL server on the host (Debian postgresql; make apt), or not root (initdb runs as postgres)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgreSQL:
    """A running cluster: where it listens and who may log in."""

    port: int
    user: str
    password: str
    database: str
    folder: Path

    def orthanc_settings(self) -> dict[str, Any]:
        """Orthanc's ``"PostgreSQL"`` section for this database: the index only, no lock (several Orthancs)."""
        return {
            "EnableIndex": True,
            "EnableStorage": False,
            "Host": "127.0.0.1",
            "Port": self.port,
            "Database": self.database,
            "Username": self.user,
            "Password": self.password,
            "EnableSsl": False,
            "Lock": False,
        }

    def create_database(self, name: str) -> str:
        """A new, empty database owned by :attr:`user` (one Orthanc index per test); its name."""
        assert POSTGRESQL_BIN is not None
        _as_postgres(
            str(POSTGRESQL_BIN / "createdb"), "-h", str(self.folder), "-p", str(self.port), "-U", self.user, name
        )
        return name

    def connection_parameters(self) -> dict[str, str]:
        """libpq keywords, as the plugin's ``SharedDatabase.parameters``."""
        return {
            "host": "127.0.0.1",
            "port": str(self.port),
            "dbname": self.database,
            "user": self.user,
            "password": self.password,
        }


def _as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)


@contextlib.contextmanager
def postgresql_cluster(user: str = "postgres", database: str = "orthanc", password: str = "") -> Iterator[PostgreSQL]:
    """Start a cluster with ``database`` owned by ``user``. With a ``password``, TCP logins must give it (SCRAM);
    without, every login is trusted."""
    assert POSTGRESQL_BIN is not None
    folder = Path(tempfile.mkdtemp(prefix="test-postgresql-"))
    shutil.chown(folder, "postgres", "postgres")
    data = f"{folder}/data"
    server = PostgreSQL(_free_port(), user, password, database, folder)
    authentication = ["--auth=trust"]
    if password:
        password_file = folder / "password"
        password_file.write_text(password + "\n", encoding="utf-8")
        shutil.chown(password_file, "postgres", "postgres")
        authentication = [f"--pwfile={password_file}", "--auth-local=trust", "--auth-host=scram-sha-256"]
    try:
        _as_postgres(str(POSTGRESQL_BIN / "initdb"), "-D", data, "-U", user, *authentication)
        options = f"-k {folder} -p {server.port} -h 127.0.0.1 -c fsync=off"
        _as_postgres(str(POSTGRESQL_BIN / "pg_ctl"), "-D", data, "-l", f"{folder}/log", "-w", "-o", options, "start")
        try:
            server.create_database(database)
            yield server
        finally:
            _as_postgres(str(POSTGRESQL_BIN / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
