"""The plugin's shared state (``cluster.py``) on a real PostgreSQL, without Orthanc: two nodes' objects on one
database see each other's links, write one audit chain between them, and only one of them leads ingest at a time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from postgresql_cluster import PostgreSQL, needs_postgresql, postgresql_cluster

from orthanc_anonymizer.errors import LinkStoreError
from orthanc_anonymizer.server.cluster import (
    SCHEMA,
    ChangeLogGaps,
    Cluster,
    ClusterError,
    IngestLeadership,
    LeadershipLost,
)
from orthanc_anonymizer.server.config import SharedDatabase

pytestmark = [pytest.mark.integration, needs_postgresql]


@pytest.fixture(scope="module")
def postgresql() -> Iterator[PostgreSQL]:
    with postgresql_cluster(user="orthanc", password="cluster-test-password") as server:
        yield server


@pytest.fixture
def database(postgresql: PostgreSQL) -> Iterator[SharedDatabase]:
    shared = SharedDatabase(parameters=postgresql.connection_parameters(), description="test", node="test-node")
    yield shared
    with psycopg.connect(**postgresql.connection_parameters(), autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def test_links_made_on_one_node_are_found_from_the_other(database: SharedDatabase) -> None:
    node_a, node_b = Cluster.open(replace(database, node="a")), Cluster.open(replace(database, node="b"))
    node_a.links.add("Study", "original", "copy")
    node_a.links.add_many([("Instance", f"original-{n}", f"copy-{n}") for n in range(20)])
    node_b.links.add("Study", "original", "copy")  # the same study anonymized on B: one link
    assert node_b.links.copies("Study", "original") == ["copy"]
    assert node_b.links.source("Study", "copy") == "original"
    assert node_b.links.source("Instance", "copy-19") == "original-19"
    assert node_b.links.source("Series", "copy") is None
    node_a.close()
    node_b.close()


def test_a_database_that_turned_read_only_fails_link_writes_as_a_link_store_error(
    database: SharedDatabase, postgresql: PostgreSQL
) -> None:
    """As after a fail-over to a standby: the next connection is read-only. The job's copy must then be deleted,
    which it does on :class:`LinkStoreError` (tests/unit/test_jobs.py)."""
    node = Cluster.open(database)
    node.links.add("Study", "original", "copy")
    user = postgresql.connection_parameters()["user"]
    with psycopg.connect(**postgresql.connection_parameters(), autocommit=True) as admin:
        admin.execute(f'ALTER ROLE "{user}" SET default_transaction_read_only = on')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                (user,),
            )
            with pytest.raises(LinkStoreError, match=r"links index \(shared database\) cannot be written"):
                node.links.add("Study", "original", "copy-2")
            assert node.links.copies("Study", "original") == ["copy"]  # reading still works
        finally:
            admin.execute(f'ALTER ROLE "{user}" RESET default_transaction_read_only')
    node.close()


def test_both_nodes_append_to_one_chain_and_an_edited_record_breaks_it(
    database: SharedDatabase, postgresql: PostgreSQL
) -> None:
    nodes = [Cluster.open(replace(database, node=name)) for name in "ab"]

    def append(node: Cluster, name: str) -> None:
        for n in range(40):
            node.audit.append({"Event": "anonymize", "Node": name, "N": n})
        # an on-ingest batch: its records stay together and in order in the chain
        node.audit.append_many([{"Event": "anonymize", "Node": name, "Batch": n} for n in range(20)])

    threads = [threading.Thread(target=append, args=(node, name)) for node, name in zip(nodes, "AB", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert nodes[1].audit.verify() == {"Valid": True, "Records": 120, "BrokenAt": None}
    records = nodes[0].audit.read()
    assert [record["Sequence"] for record in records] == list(range(1, 121))
    assert {record["Node"] for record in records} == {"A", "B"}
    for name in "AB":
        batch = [record for record in records if record["Node"] == name and "Batch" in record]
        assert [record["Batch"] for record in batch] == list(range(20))
        assert batch[-1]["Sequence"] - batch[0]["Sequence"] == 19  # no record of the other node in between
    assert [record["Sequence"] for record in nodes[0].audit.read(limit=3)] == [118, 119, 120]
    assert [record["Sequence"] for record in nodes[0].audit.read(since=10, limit=2)] == [11, 12]
    assert nodes[0].audit.head()[0] == 120

    with psycopg.connect(**postgresql.connection_parameters(), autocommit=True) as connection:
        connection.execute(
            f"UPDATE {SCHEMA}.audit SET record = replace(record, 'anonymize', 'anonymise') WHERE sequence = 30"
        )
        assert nodes[0].audit.verify() == {"Valid": False, "Records": 120, "BrokenAt": 30}
        connection.execute(f"DELETE FROM {SCHEMA}.audit WHERE sequence >= 30 AND sequence <= 31")
        assert nodes[0].audit.verify() == {"Valid": False, "Records": 118, "BrokenAt": 30}
    for node in nodes:
        node.close()


def test_one_leader_at_a_time_and_the_lead_passes_on_when_its_connection_ends(database: SharedDatabase) -> None:
    Cluster.open(database).close()
    first, second = IngestLeadership(database), IngestLeadership(database)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.leading() and not second.leading()
    first.connection().close()  # as when the leader's process dies: its session ends
    assert not first.leading()
    with pytest.raises(LeadershipLost):
        first.connection()
    assert second.try_acquire()
    second.release()


def test_a_hole_in_the_numbers_is_waited_for_while_the_transaction_that_may_fill_it_runs(
    database: SharedDatabase, postgresql: PostgreSQL
) -> None:
    leadership = IngestLeadership(database)
    assert leadership.try_acquire()
    gaps = ChangeLogGaps(leadership)
    assert gaps.settled(5)  # nothing runs: a hole is for good
    with psycopg.connect(**postgresql.connection_parameters()) as writer:
        writer.execute("CREATE TEMPORARY TABLE pending (n int)")
        writer.execute("INSERT INTO pending VALUES (1)")  # a transaction with an ID, not committed
        assert not gaps.settled(7)
        assert not gaps.settled(7)
        writer.commit()
    assert gaps.settled(7)
    leadership.release()


def test_two_running_nodes_may_not_share_a_name_and_a_dead_nodes_unfinished_jobs_are_marked(
    database: SharedDatabase, tmp_path: Path
) -> None:
    node_a = Cluster.open(replace(database, node="node-a"))
    with pytest.raises(ClusterError, match=r"Anonymizer\.NodeName: .*'node-a'"):
        Cluster.open(replace(database, node="node-a"))
    node_b = Cluster.open(replace(database, node="node-b"))
    assert node_b.alive("node-a") and node_a.alive("node-b") and not node_a.alive("node-c")
    jobs_a, jobs_b = node_a.job_store(tmp_path), node_b.job_store(tmp_path)
    running = {"ID": str(uuid.uuid4()), "Level": "Study", "Resources": ["s"], "State": "Running", "Results": []}
    jobs_a.save(running)
    assert jobs_b.load(running["ID"])["State"] == "Running"  # any node answers for any node's job
    assert jobs_b.mark_interrupted() == 0  # node A runs it: left alone
    node_a.close()  # as when node A dies: its session ends (within moments, on the server's side)
    deadline = time.monotonic() + 5
    while node_b.alive("node-a") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not node_b.alive("node-a")
    assert jobs_b.mark_interrupted() == 1
    assert jobs_b.load(running["ID"])["State"] == "Failure"
    node_b.audit.append({"Event": "anonymize"})
    assert node_b.audit.read(limit=1)[0]["Node"] == "node-b"  # which Orthanc of the cluster did it
    node_b.close()
