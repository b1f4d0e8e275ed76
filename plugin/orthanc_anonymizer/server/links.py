"""The reverse index of links: from an original to all its anonymized copies.

Each copy carries ``AnonymizedFromResource`` (its original's Orthanc ID) as Orthanc metadata: that is the forward
link, and the source of truth. Orthanc cannot search by metadata, so the plugin also records every link in a small
SQLite file under its state folder to answer "which copies were made of this resource?".
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from orthanc_anonymizer.errors import LinkStoreError
from orthanc_anonymizer.logs import exception_summary

FROM_RESOURCE = "AnonymizedFromResource"
"""The metadata on each copy (instance, series, study, patient) naming its original's Orthanc ID: the forward link."""
PROFILE_METADATA = "AnonymizationProfile"
"""The metadata on each copy describing the profile that made it (JSON)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    copy TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (level, source, copy)
);
CREATE INDEX IF NOT EXISTS links_by_copy ON links (level, copy);
"""


class LinkStore(ABC):
    """Originals to copies, per level (``Patient``, ``Study``, ``Series``, ``Instance``), wherever they are kept:
    :class:`LinkIndex` (a SQLite file of this Orthanc) or :class:`~.cluster.SharedLinkIndex` (the database several
    Orthancs share). Thread-safe; their storage's errors are :class:`~orthanc_anonymizer.errors.LinkStoreError`."""

    def add(self, level: str, source: str, copy: str) -> None:
        """Record that ``copy`` was made from ``source`` (idempotent)."""
        self.add_many([(level, source, copy)])

    @abstractmethod
    def add_many(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Record several ``(level, source, copy)`` links in one transaction (idempotent)."""

    @abstractmethod
    def copies(self, level: str, source: str) -> list[str]:
        """The copies made of ``source``, oldest first."""

    @abstractmethod
    def source(self, level: str, copy: str) -> str | None:
        """The original ``copy`` was made from, if the index knows it."""

    @abstractmethod
    def close(self) -> None: ...


class LinkIndex(LinkStore):
    """The links in a SQLite file under this Orthanc's state folder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        """The file; worker processes that store copies open it too (SQLite's WAL lets several processes write)."""
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(_SCHEMA)

    def add_many(self, rows: Iterable[tuple[str, str, str]]) -> None:
        now = time.time()
        values = [(level, source, copy, now) for level, source, copy in rows]
        if not values:
            return
        with self._lock, _reported("written"):
            self._connection.execute("BEGIN")
            try:
                self._connection.executemany(
                    "INSERT OR IGNORE INTO links (level, source, copy, created) VALUES (?, ?, ?, ?)", values
                )
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def copies(self, level: str, source: str) -> list[str]:
        with self._lock, _reported("read"):
            rows = self._connection.execute(
                "SELECT copy FROM links WHERE level = ? AND source = ? ORDER BY created, copy", (level, source)
            ).fetchall()
        return [row[0] for row in rows]

    def source(self, level: str, copy: str) -> str | None:
        with self._lock, _reported("read"):
            row = self._connection.execute(
                "SELECT source FROM links WHERE level = ? AND copy = ? ORDER BY created DESC LIMIT 1", (level, copy)
            ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()


@contextlib.contextmanager
def _reported(doing: str) -> Iterator[None]:
    """SQLite's errors (a full disk, a damaged file) as :class:`LinkStoreError`, naming the file's role."""
    try:
        yield
    except sqlite3.Error as error:
        raise LinkStoreError(f"the links index (links.sqlite) cannot be {doing}: {exception_summary(error)}") from error
