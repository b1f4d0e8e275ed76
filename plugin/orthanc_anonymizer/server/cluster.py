"""Several Orthanc servers on one PostgreSQL index: the plugin's shared state, in that same database.

Orthanc servers whose index is one PostgreSQL database (and whose storage is shared) see the same patients,
studies, metadata and change log. What the plugin keeps beside Orthanc must be shared the same way, or node B
would not know the copies node A made, and every node would anonymize every arriving instance. With
``"PostgreSQL": {"EnableIndex": true}`` and ``Anonymizer.SharedState`` ``Auto`` (the default) or ``PostgreSQL``,
the plugin keeps in the schema ``orthanc_anonymizer`` of that database (created on first start):

``links``
    the reverse index of links (:class:`SharedLinkIndex`); the forward link stays Orthanc's own
    ``AnonymizedFromResource`` metadata, which every node reads from the index anyway;
``ingest_position``
    how far on-ingest anonymization has gone in Orthanc's change log (:class:`SharedChangeCursor`), which on
    PostgreSQL is one log for the whole cluster;
``audit``
    the audit trail, one hash chain for the cluster (:class:`SharedAuditLog`): each append takes a
    transaction-level advisory lock, so the records of all nodes are numbered and chained in one order.

On-ingest anonymization (Copy mode) and ``ForwardTo`` run on one node at a time, the one that holds a
session-level advisory lock on a connection of its own (:class:`IngestLeadership`); the others try again every few
seconds. When the leader dies, its connection drops, PostgreSQL releases the lock, and another node takes over from
the shared position: a batch the leader had not finished is replayed, which the keyed deterministic UIDs make
harmless (the same copies, Orthanc keeps one), as after a crash of a single Orthanc. Gateway mode runs on the node
that receives the instance, so once.

Several writers make one more thing possible in the change log: a change numbered 11 may become visible after
12, because the transaction that took 11 commits later (or rolls back, leaving a hole for good).
:class:`ChangeLogGaps` tells which: the loop does not move past a hole until every transaction that was running
when the hole was seen has ended.

This module does not import ``orthanc``; psycopg is imported only when a cluster is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from orthanc_anonymizer.audit import GENESIS_HASH, canonical_json, check_record, parse_record, seal_many, verify_chain
from orthanc_anonymizer.errors import AnonymizerError, LinkStoreError
from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.server.config import SharedDatabase
from orthanc_anonymizer.server.job_records import JobStore
from orthanc_anonymizer.server.links import LinkStore

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("orthanc_anonymizer.cluster")

SCHEMA = "orthanc_anonymizer"
LOCK_CLASS = 0x416E6F6E
"""The first key of the plugin's advisory locks ("Anon"); two-key locks never meet the index plugin's one-key ones."""
SETUP_LOCK, LEADER_LOCK, AUDIT_LOCK = 1, 2, 3
NODE_LOCK_CLASS = LOCK_CLASS + 1
"""Held by each running node, the second key being its name's hash: how nodes tell which others are alive."""


def _node_key(node: str) -> int:
    return int.from_bytes(hashlib.sha256(node.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.links (
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    copy TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (level, source, copy)
);
CREATE INDEX IF NOT EXISTS links_by_copy ON {SCHEMA}.links (level, copy);
CREATE TABLE IF NOT EXISTS {SCHEMA}.ingest_position (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    updated TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.audit (
    sequence BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    record TEXT NOT NULL
);
"""


class ClusterError(AnonymizerError):
    """The shared database cannot be reached or set up (the message names where, never the password)."""


class LeadershipLost(AnonymizerError):
    """This node no longer holds the ingest lock: its connection to the database is gone."""


def connect(database: SharedDatabase) -> psycopg.Connection[Any]:
    """A new autocommit connection; keepalives make a dead peer noticed within about 20 s."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    parameters = dict(database.parameters)
    conninfo = make_conninfo(
        parameters.pop("conninfo", ""),
        connect_timeout=10,
        application_name="orthanc-anonymizer",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=3,
        keepalives_count=3,
        **parameters,
    )
    return psycopg.connect(conninfo, autocommit=True)


class _Session:
    """One connection shared by the plugin's threads (one statement at a time), made again once it broke."""

    def __init__(self, database: SharedDatabase) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[Any] | None = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._connection is None or self._connection.closed or self._connection.broken:
                self._connection = connect(self._database)
            yield self._connection

    def run(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """``work(connection)``, once more on a new connection if the first one was broken (idempotent work only)."""
        import psycopg

        for attempt in (1, 2):
            try:
                with self.connection() as connection:
                    return work(connection)
            except psycopg.OperationalError:
                if attempt == 2 or self._connection is None or not self._connection.broken:
                    raise
        raise AssertionError("not reached")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class SharedLinkIndex(LinkStore):
    """The links in the shared database (:class:`~.links.LinkIndex` keeps them in a file): every node sees the links
    every node made."""

    def __init__(self, session: _Session) -> None:
        super().__init__()
        self._session = session

    def add_many(self, rows: Iterable[tuple[str, str, str]]) -> None:
        values = list(rows)
        if not values:
            return

        def insert(connection: psycopg.Connection[Any]) -> None:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {SCHEMA}.links (level, source, copy) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    values,
                )

        self._run("written", insert)

    def _run(self, doing: str, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """The database's errors (unreachable, read-only, failed over) as :class:`LinkStoreError`."""
        import psycopg

        try:
            return self._session.run(work)
        except psycopg.Error as error:
            raise LinkStoreError(
                f"the links index (shared database) cannot be {doing}: {exception_summary(error)}"
            ) from error

    def copies(self, level: str, source: str) -> list[str]:
        rows = self._run(
            "read",
            lambda connection: connection.execute(
                f"SELECT copy FROM {SCHEMA}.links WHERE level = %s AND source = %s ORDER BY created, copy",
                (level, source),
            ).fetchall(),
        )
        return [str(row[0]) for row in rows]

    def source(self, level: str, copy: str) -> str | None:
        row = self._run(
            "read",
            lambda connection: connection.execute(
                f"SELECT source FROM {SCHEMA}.links WHERE level = %s AND copy = %s ORDER BY created DESC LIMIT 1",
                (level, copy),
            ).fetchone(),
        )
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._session.close()


class SharedAuditLog:
    """The audit trail of the whole cluster: :class:`~.audit.AuditLog`'s records and chain, in the shared database.

    Appends from every node are serialized by a transaction-level advisory lock: each reads the newest record and
    inserts the next inside one transaction. The records are stored as their canonical JSON text, so
    :meth:`verify` recomputes exactly the hashes that were taken.
    """

    PAGE = 2000

    def __init__(self, session: _Session, node: str = "", *, reject_person_names: bool = True) -> None:
        self._session = session
        self.node = node
        """Added to every record as ``Node`` (which Orthanc of the cluster did it), unless the record has one."""
        self.reject_person_names = reject_person_names

    def append(self, record: dict[str, object]) -> dict[str, object]:
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[dict[str, object]]) -> list[dict[str, object]]:
        """As :meth:`~.audit.AuditLog.append_many`: in order, in one transaction, all or none."""
        for record in records:
            check_record(record, self.reject_person_names)
        if not records:
            return []
        if self.node:
            records = [record if "Node" in record else {**record, "Node": self.node} for record in records]
        # Not retried on a new connection: a commit whose answer was lost would be appended twice.
        with self._session.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, AUDIT_LOCK))
            newest = connection.execute(
                f"SELECT sequence, hash FROM {SCHEMA}.audit ORDER BY sequence DESC LIMIT 1"
            ).fetchone()
            sequence, previous_hash = (int(newest[0]), str(newest[1])) if newest else (0, GENESIS_HASH)
            stored_records = seal_many(records, sequence, previous_hash)
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {SCHEMA}.audit (sequence, hash, record) VALUES (%s, %s, %s)",
                    [
                        (stored["Sequence"], stored["Hash"], canonical_json(stored).decode("utf-8"))
                        for stored in stored_records
                    ],
                )
        return stored_records

    def _texts(self, query: str, parameters: tuple[object, ...]) -> list[str]:
        rows = self._session.run(lambda connection: connection.execute(query, parameters).fetchall())
        return [str(row[0]) for row in rows]

    def read(self, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """As :meth:`~.audit.AuditLog.read`: oldest first; ``since`` pages forward, ``limit`` alone gives the tail."""
        if limit is not None and limit <= 0:
            return []
        if since is None and limit is not None:
            texts = self._texts(
                f"SELECT record FROM (SELECT sequence, record FROM {SCHEMA}.audit ORDER BY sequence DESC LIMIT %s) "
                "AS tail ORDER BY sequence",
                (limit,),
            )
        else:
            texts = self._texts(
                f"SELECT record FROM {SCHEMA}.audit WHERE sequence > %s ORDER BY sequence LIMIT %s",
                (since or 0, limit),
            )
        return [record for record in map(parse_record, texts) if record is not None]

    def head(self) -> tuple[int, str]:
        """Sequence and Hash of the newest record, to keep elsewhere."""
        rows = self._session.run(
            lambda connection: connection.execute(
                f"SELECT sequence, hash FROM {SCHEMA}.audit ORDER BY sequence DESC LIMIT 1"
            ).fetchall()
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)

    def _page(self, after: int) -> list[tuple[int, str]]:
        rows: list[tuple[int, str]] = self._session.run(
            lambda connection: connection.execute(
                f"SELECT sequence, record FROM {SCHEMA}.audit WHERE sequence > %s ORDER BY sequence LIMIT %s",
                (after, self.PAGE),
            ).fetchall()
        )
        return rows

    def _all(self) -> Iterator[dict[str, Any] | None]:
        after = 0
        while True:
            rows = self._page(after)
            for sequence, text in rows:
                after = int(sequence)
                yield parse_record(str(text))
            if len(rows) < self.PAGE:
                return

    def verify(self) -> dict[str, object]:
        """The chain checked end to end, as :meth:`~.audit.AuditLog.verify`: a record edited in the table, or one
        deleted, breaks it there."""
        return verify_chain(self._all())


class LeaderWork(Protocol):
    """What runs while this node leads (the ingest loop, made with :meth:`IngestLeadership.position`, ``gaps``
    and ``leading``): it returns from :meth:`run_forever` once ``leading`` says the lead is lost."""

    stopping: threading.Event

    def run_forever(self) -> None: ...


class IngestLeadership:
    """Which node runs on-ingest anonymization: the one holding the advisory lock ``(LOCK_CLASS, LEADER_LOCK)``
    on a connection of its own. The shared ingest position is read and written on that connection only, so a node
    that lost it can no longer move the position."""

    RETRY = 3.0
    """Seconds between two tries to take the lead."""
    CHECK_EVERY = 1.0
    """Seconds between two checks that the lock's connection is alive."""

    def __init__(self, database: SharedDatabase, on_lead: Callable[[], object] | None = None) -> None:
        self.database = database
        self.on_lead = on_lead
        """Called each time this node takes the lead (the cluster marks the dead nodes' unfinished jobs)."""
        self._connection: psycopg.Connection[Any] | None = None
        self._checked = 0.0

    def try_acquire(self) -> bool:
        import psycopg

        connection: psycopg.Connection[Any] | None = None
        try:
            connection = connect(self.database)
            row = connection.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LEADER_LOCK)).fetchone()
        except psycopg.Error as error:
            if connection is not None:
                connection.close()
            logger.warning("ingest lead not taken: database unreachable (%s)", exception_summary(error))
            return False
        if not row or row[0] is not True:
            connection.close()
            return False
        self._connection, self._checked = connection, time.monotonic()
        return True

    def leading(self) -> bool:
        """Whether this node still holds the lock (its connection answers, checked at most every second)."""
        import psycopg

        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            return False
        if time.monotonic() - self._checked >= self.CHECK_EVERY:
            try:
                connection.execute("SELECT 1")
            except psycopg.Error:
                return False
            self._checked = time.monotonic()
        return True

    def connection(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            raise LeadershipLost("the ingest lock's database connection is gone")
        return connection

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()  # the session ends and the lock with it

    def position(self) -> SharedChangeCursor:
        """Where the leader's ingest loop keeps its position: in the shared database, on the lock's connection."""
        return SharedChangeCursor(self)

    def gaps(self) -> ChangeLogGaps:
        """How the leader's ingest loop waits at holes of the change log that several writers leave."""
        return ChangeLogGaps(self)

    def run(self, loop: LeaderWork, on_first_lead: Callable[[], None] | None = None) -> None:
        """Until ``loop.stopping``: take the lead when free, run ``loop`` while holding it, then try again."""
        while not loop.stopping.is_set():
            if not self.try_acquire():
                loop.stopping.wait(self.RETRY)
                continue
            logger.warning(
                "this Orthanc now runs on-ingest anonymization for the cluster (%s)", self.database.description
            )
            try:
                if self.on_lead is not None:
                    self.on_lead()
            except Exception as error:  # the lead is taken all the same
                logger.error("on taking the ingest lead: %s", exception_summary(error))
            if on_first_lead is not None:
                on_first_lead()
                on_first_lead = None
            try:
                loop.run_forever()
            finally:
                self.release()
            if not loop.stopping.is_set():
                logger.warning("on-ingest anonymization: lead lost (database connection); trying to take it again")


class SharedChangeCursor:
    """The ingest position in the shared database (what :class:`~.ingest.ChangeCursor` keeps in a file), read
    and written on the leader's own connection."""

    NAME = "changes"

    def __init__(self, leadership: IngestLeadership) -> None:
        self.leadership = leadership

    def load(self) -> int | None:
        row = (
            self.leadership.connection()
            .execute(f"SELECT position FROM {SCHEMA}.ingest_position WHERE name = %s", (self.NAME,))
            .fetchone()
        )
        return None if row is None else int(row[0])

    def save(self, position: int) -> None:
        self.leadership.connection().execute(
            f"INSERT INTO {SCHEMA}.ingest_position (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated = now()",
            (self.NAME, position),
        )


class ChangeLogGaps:
    """Whether a hole in the change log's numbers is for good (its transaction rolled back) or may still fill
    (its transaction has not committed yet).

    A change's number is taken inside the transaction that logs it, a write, so that transaction had its ID when
    the hole was seen. A transaction ID taken then (``txid_current()``, committed at once) is greater than it;
    once the oldest transaction still running (``xmin`` of a new snapshot) is past that ID, the one that took the
    missing number has ended, and the hole stays. A transaction left open for more than :attr:`PATIENCE` seconds
    (a session idle in a transaction elsewhere) does not stop ingest for ever: the hole is then skipped, with a
    warning.
    """

    PATIENCE = 60.0

    def __init__(self, leadership: IngestLeadership) -> None:
        self.leadership = leadership
        self._seen: dict[int, tuple[int, float]] = {}

    def settled(self, missing: int) -> bool:
        """Whether the loop may move past change number ``missing``, which the log does not show."""
        for older in [number for number in self._seen if number < missing]:
            del self._seen[older]  # the loop is past those
        connection = self.leadership.connection()
        if missing not in self._seen:
            row = connection.execute("SELECT txid_current()").fetchone()
            assert row is not None
            self._seen[missing] = (int(row[0]), time.monotonic())
        horizon, since = self._seen[missing]
        row = connection.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())").fetchone()
        assert row is not None
        if int(row[0]) > horizon:
            del self._seen[missing]
            return True
        if time.monotonic() - since > self.PATIENCE:
            logger.warning(
                "ingest: change %d still missing after %.0f s while a transaction stays open; skipped",
                missing,
                self.PATIENCE,
            )
            del self._seen[missing]
            return True
        return False


class SharedJobStore(JobStore):
    """Job records in the shared storage, one folder per node (``jobs/<NodeName>/``): each node writes its own
    and reads everyone's (``GET /anonymizer/jobs/{id}`` answers on any node). Jobs a node left pending or running
    when it died are marked interrupted when it starts again, or when another node finds it gone."""

    def __init__(self, root: Path, node: str, alive: Callable[[str], bool]) -> None:
        super().__init__(root / node)
        self.root = root
        self.node = node
        self._alive = alive

    def load(self, job_id: str) -> dict[str, Any] | None:
        record = super().load(job_id)
        if record is not None:
            return record
        folders = [self.root, *sorted(path for path in self.root.iterdir() if path.is_dir())]
        for folder in folders:
            if folder != self.directory and (record := JobStore(folder).load(job_id)) is not None:
                return record
        return None

    def mark_interrupted(self) -> int:
        """This node's own unfinished jobs (it is starting), then those of every node that is not running."""
        count = super().mark_interrupted()
        for folder in sorted(path for path in self.root.iterdir() if path.is_dir() and path != self.directory):
            if not self._alive(folder.name):
                count += JobStore(folder).mark_interrupted()
        return count


class Cluster:
    """The shared state of one node: links, audit trail, job records, and what it needs to lead on-ingest
    anonymization. While it is open the node holds its name's lock, which tells the others it is alive."""

    def __init__(self, database: SharedDatabase) -> None:
        self.database = database
        self._session = _Session(database)
        self.links = SharedLinkIndex(self._session)
        self.audit = SharedAuditLog(self._session, database.node)
        self._node_connection: psycopg.Connection[Any] | None = None
        self.jobs: SharedJobStore | None = None

    @classmethod
    def open(cls, database: SharedDatabase) -> Cluster:
        """Connect, create the schema and tables if missing (nodes starting together take turns), and take this
        node's name. :class:`ClusterError` if the database cannot be used or another node runs under the name."""
        import psycopg

        cluster = cls(database)
        try:
            with cluster._session.connection() as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, SETUP_LOCK))
                for statement in filter(str.strip, _TABLES.split(";")):
                    connection.execute(statement.encode("utf-8"))
            cluster._node_connection = connect(database)
            row = cluster._node_connection.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (NODE_LOCK_CLASS, _node_key(database.node))
            ).fetchone()
        except psycopg.Error as error:
            cluster.close()
            raise ClusterError(
                f"shared state: the PostgreSQL database {database.description} cannot be used: "
                f"{exception_summary(error)}"
            ) from None
        if not row or row[0] is not True:
            cluster.close()
            raise ClusterError(
                f"Anonymizer.NodeName: another Orthanc of the cluster runs as {database.node!r}; give each its own"
            )
        return cluster

    def alive(self, node: str) -> bool:
        """Whether an Orthanc named ``node`` runs with the plugin on this database now."""
        row = self._session.run(
            lambda connection: connection.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
                "AND classid = %s::bigint::oid AND objid = %s::bigint::oid "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
                (NODE_LOCK_CLASS, _node_key(node)),
            ).fetchone()
        )
        return bool(row and row[0])

    def job_store(self, state_directory: Path) -> SharedJobStore:
        """This node's job records, under ``state_directory/jobs/<NodeName>/``."""
        self.jobs = SharedJobStore(state_directory / "jobs", self.database.node, self.alive)
        return self.jobs

    def leadership(self) -> IngestLeadership:
        return IngestLeadership(self.database, on_lead=self.jobs.mark_interrupted if self.jobs else None)

    def close(self) -> None:
        self._session.close()
        if self._node_connection is not None:
            self._node_connection.close()
            self._node_connection = None
