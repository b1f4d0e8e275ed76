"""Scale-out: two Orthanc processes with the plugin on one PostgreSQL index (Debian's ``orthanc-postgresql``) and one
shared storage folder, as ``docker-compose.yml`` runs them. Each test has its own database in a throwaway cluster.

What a site running two nodes behind a load balancer would check: a copy made on one node is linked from both; the
same study anonymized on both at once is one copy; instances arriving on both are anonymized once each, by the one
node that leads ingest; and when that node is killed the other one takes over, skipping nothing.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ingest_support import (
    assert_exactly_one_copy_each,
    auto_overrides,
    interleaved,
    originals_of,
    send,
    settle,
    storescu_command,
    storescu_environment,
    studies_for,
    wait_for_instances,
)
from orthanc_server import OrthancServer
from postgresql_cluster import INDEX_PLUGIN, PostgreSQL, needs_postgresql, postgresql_cluster
from study_generator import Patient, make_study, write_files

from orthanc_anonymizer.server.launch import PYTHON_PLUGIN

pytestmark = [
    pytest.mark.integration,
    needs_postgresql,
    pytest.mark.skipif(not Path(INDEX_PLUGIN).exists(), reason=f"{INDEX_PLUGIN} is missing: make apt"),
]
LEADS = "now runs on-ingest anonymization for the cluster"
_databases = itertools.count()


@pytest.fixture(scope="module")
def postgresql() -> Iterator[PostgreSQL]:
    with postgresql_cluster() as server:
        yield server


Nodes = Callable[..., tuple[OrthancServer, OrthancServer]]


@pytest.fixture
def two_nodes(server_factory: Any, postgresql: PostgreSQL, tmp_path: Path) -> Iterator[Nodes]:
    """``two_nodes(**overrides)``: nodes A and B, started one after the other, on a new database and storage;
    stopped together afterwards."""
    started: list[OrthancServer] = []

    def start(**overrides: Any) -> tuple[OrthancServer, OrthancServer]:
        database = postgresql.create_database(f"cluster{next(_databases)}")
        storage = tmp_path / "shared-storage"
        settings = {
            "Plugins": [PYTHON_PLUGIN, INDEX_PLUGIN],
            "PostgreSQL": {**postgresql.orthanc_settings(), "Database": database},
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            **overrides,
        }
        nodes = []
        for name in ("node-a", "node-b"):
            section = {**settings.get("Anonymizer", {}), "NodeName": name}  # both run on this one host
            node = server_factory(name, overrides={**settings, "Anonymizer": section})
            node.storage = storage  # the plugin's state folder is in the shared storage too
            started.append(node)
            nodes.append(node.start())
        system = nodes[0].json("/system")
        assert "PostgreSQL" in str(system.get("DatabaseBackendPlugin")), system
        return nodes[0], nodes[1]

    yield start
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(OrthancServer.stop, started))


def test_a_copy_made_on_one_node_is_linked_both_ways_from_the_other(two_nodes: Nodes) -> None:
    node_a, node_b = two_nodes()
    patient = Patient(name="Cluster^Links", id="PID-CLUSTER-LINKS")
    study = node_a.upload_study(make_study(patient, series=2, per_series=2))
    answer = node_a.anonymize("studies", study)
    copy = answer["Resource"]
    assert answer["Instances"] == 4 and answer["Failed"] == []

    assert node_b.json(f"/anonymizer/studies/{study}/links") == {"Source": None, "Copies": [copy]}
    assert node_b.json(f"/anonymizer/studies/{copy}/links") == {"Source": study, "Copies": []}
    assert node_b.get(f"/studies/{copy}/metadata/AnonymizedFromResource").text == study
    original_instance = node_b.json(f"/studies/{study}/instances")[0]["ID"]
    (copied_instance,) = node_b.json(f"/anonymizer/instances/{original_instance}/links")["Copies"]
    assert node_b.get(f"/instances/{copied_instance}/metadata/AnonymizedFromResource").text == original_instance
    # One audit trail for the cluster: B shows and verifies the record A wrote.
    (record,) = [record for record in node_b.json("/anonymizer/audit") if record.get("Event") == "anonymize"]
    assert (record["Source"], record["Result"]) == (study, copy)
    assert record["Node"] == "node-a"
    assert node_b.json("/anonymizer/audit/verify") == {"Valid": True, "Records": 1, "BrokenAt": None}
    # A job started on A is followed on B (a load balancer may send the next request to either).
    job = node_a.post(f"/anonymizer/series/{node_a.json(f'/studies/{study}')['Series'][0]}", {"Asynchronous": True})
    assert node_b.wait_job(job.json()["Job"])["State"] == "Success"
    assert LEADS not in node_a.log_text() + node_b.log_text()  # no on-ingest anonymization configured


def test_the_same_study_anonymized_on_both_nodes_at_once_is_one_copy(two_nodes: Nodes) -> None:
    node_a, node_b = two_nodes()
    patient = Patient(name="Cluster^Twice", id="PID-CLUSTER-TWICE")
    study = node_a.upload_study(make_study(patient, series=2, per_series=6))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda node: node.anonymize("studies", study), (node_a, node_b)))
    assert answers[0]["Resource"] == answers[1]["Resource"]  # keyed deterministic UIDs: the same study
    copy = answers[0]["Resource"]
    assert all(answer["Instances"] == 12 and answer["Failed"] == [] for answer in answers)
    for node in (node_a, node_b):
        assert sorted(node.json("/studies")) == sorted([study, copy])
        assert int(node.json(f"/studies/{copy}/statistics")["CountInstances"]) == 12
        assert node.json(f"/anonymizer/studies/{study}/links")["Copies"] == [copy]
    assert int(node_a.json("/statistics")["CountInstances"]) == 24
    assert node_b.json("/anonymizer/audit/verify") == {"Valid": True, "Records": 2, "BrokenAt": None}


def split_send(nodes: tuple[OrthancServer, ...], files: list[bytes], folder: Path) -> list[subprocess.Popen[bytes]]:
    """Send ``files`` to the nodes at the same time, one instance to each in turn (a study arrives on both)."""
    senders = []
    for index, node in enumerate(nodes):
        paths = write_files(files[index :: len(nodes)], folder / node.folder.name)
        senders.append(
            subprocess.Popen(
                storescu_command(node, paths),
                env=storescu_environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return senders


def audited_instances(node: OrthancServer) -> Counter[str]:
    """Original instance ID -> how many on-ingest audit records name it."""
    records = node.json("/anonymizer/audit")
    return Counter(record["Source"] for record in records if record.get("User") == "auto" and record.get("Result"))


def jobbed_instances(node: OrthancServer) -> Counter[str]:
    """Original instance ID -> how many on-ingest job records of any node (the shared storage) list it."""
    records = [json.loads(path.read_text()) for path in (node.state / "jobs").glob("*/*.json")]
    return Counter(
        resource
        for record in records
        if record.get("User") == "auto" and record.get("Type") == "Anonymize"
        for resource in record["Resources"]
    )


def test_instances_arriving_on_both_nodes_are_anonymized_once_each(two_nodes: Nodes, tmp_path: Path) -> None:
    nodes = two_nodes(**auto_overrides())
    patients = [Patient(name=f"Cluster^Ingest{n}", id=f"PID-CLUSTER-INGEST-{n}") for n in range(3)]
    files = interleaved(studies_for(patients, series=2, per_series=10))
    for sender in split_send(nodes, files, tmp_path / "burst"):
        assert sender.wait(120) == 0
    wait_for_instances(nodes[1], 2 * len(files))
    settle(nodes[1])
    for node in nodes:
        assert_exactly_one_copy_each(node, patients)
    originals = originals_of(nodes[0], patients)
    assert audited_instances(nodes[1]) == Counter(dict.fromkeys(originals, 1))
    assert jobbed_instances(nodes[0]) == Counter(dict.fromkeys(originals, 1))
    assert nodes[0].json("/anonymizer/audit/verify")["Valid"] is True
    assert [LEADS in node.log_text() for node in nodes].count(True) == 1  # one node led, the other waited


def test_when_the_leader_is_killed_mid_burst_the_other_node_finishes_the_work(two_nodes: Nodes, tmp_path: Path) -> None:
    nodes = two_nodes(**auto_overrides())
    leader, survivor = nodes if LEADS in nodes[0].log_text() else nodes[::-1]
    assert LEADS in leader.log_text() and LEADS not in survivor.log_text()
    patients = [Patient(name=f"Cluster^Failover{n}", id=f"PID-CLUSTER-FAILOVER-{n}") for n in range(3)]
    files = interleaved(studies_for(patients, series=2, per_series=20))
    # The burst comes in two parts, and the test decides when the leader dies, not the machine's speed: the first
    # part is sent, the leader is killed once it has made some copies (with the rest of that part possibly still
    # under way), and only then is the rest of the burst sent.
    before, after = files[:40], files[40:]
    send(survivor, before, tmp_path / "before-kill")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not audited_instances(survivor):
        time.sleep(0.05)
    assert audited_instances(survivor), "the leader made no copy"
    assert leader.process is not None
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(30)
    leader.process = None
    send(survivor, after, tmp_path / "after-kill")

    wait_for_instances(survivor, 2 * len(files))
    settle(survivor, 3.0)
    assert_exactly_one_copy_each(survivor, patients)
    assert LEADS in survivor.log_text()
    # The batches the leader had under way: its job records say they were interrupted, none is left "Running".
    leader_jobs = [json.loads(path.read_text()) for path in (leader.state / "jobs" / leader.folder.name).glob("*.json")]
    assert leader_jobs and not [job for job in leader_jobs if job["State"] in ("Pending", "Running")]
    audited = audited_instances(survivor)
    assert set(audited) == set(originals_of(survivor, patients))
    # At most the batches the leader had under way are made again (the same copies, audited twice).
    assert sum(audited.values()) - len(audited) <= 2 * 64
    assert survivor.json("/anonymizer/audit/verify")["Valid"] is True
