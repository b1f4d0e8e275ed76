"""``make bench``: the plugin against the real alternatives, measured side by side in one run (issue 18's goals).

Every figure that matters is a ratio to a baseline measured in the same run, on the same data, interleaved
repeat by repeat (this machine is shared: absolute seconds move 5-20% between runs, ratios much less). Cases
(``--cases`` names in brackets):

(a) [orthanc] inside Orthanc, on a generated study of 512x512 16-bit CT-like instances (300, in series of 100): the
    plugin's study route (Basic profile, every copy stored and linked, synchronous) against Orthanc's built-in
    ``POST /studies/{id}/anonymize`` (synchronous) and plain ingest (``POST /instances`` of the same files over one
    connection);
(a') [series] the same on 200 such instances in ONE series, in an Orthanc of the minimal configuration an outside
    check used (:data:`MINIMAL`: SQLite index, ``StorageCompression`` false, ``StableAge`` 2, Orthanc's and the
    plugin's defaults otherwise);
(b) [storescu] on ingest: a storescu burst with and without AutoAnonymize, each into a fresh Orthanc; the last
    copy's lag after the last original, over the time the same copies then take on the same Orthanc, idle (one
    ``POST /anonymizer/batch`` job of the burst's studies); and a storescu burst of the CT study, for reference;
(c) [cli] the CLI with ``--jobs`` = cores against dicognito (pinned, in its own venv under ``.bench-venv/``) and
    plain pydicom (read, set 3 tags, write) on the same folder; then the CLI against dicognito on the same images
    with a patient each (what each new patient costs: a folder of scouts or radiographs);
(d) [growth] memory: the peak RSS of Orthanc (and of Orthanc with its worker processes) while anonymizing a study
    of 2,000 small instances and one of 200, each on a fresh Orthanc; the plugin against the built-in at 2,000;
(e) [growth] time per instance at 10, 200 and 2,000 instances, the plugin and Orthanc's built-in anonymizer;
(f) [requests] where Orthanc's time goes: each REST request a copy costs the plugin (download, store, metadata),
    its CPU in Orthanc and in the plugin's client, measured one by one on the CT study;
(g) [cores] (a) again with Orthanc and its workers pinned by ``taskset -c`` to 1 and 2 cores (``--cores``), a fresh
    Orthanc each: how the plugin and the built-in scale.

The table goes to ``bench/RESULTS.md`` (between its "generated" markers; what follows them, the notes on where the
time goes, is kept) on a full run only, the plot of time per instance against study size to
``bench/time-per-instance.png``, the raw figures to ``bench/results/results.json``. Each of issue 18's goals is a
PASS or FAIL row (issue 6's others follow, for comparison); the exit status is non-zero on a FAIL only with
``--strict``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

# The integration tests' server class: one Orthanc with the plugin on free loopback ports.
from orthanc_server import OrthancServer  # type: ignore[import-not-found]

from bench.studies import SERIES_SIZE, ct_study, small_study, write_folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "bench" / "RESULTS.md"
PLOT = ROOT / "bench" / "time-per-instance.png"
BEGIN, END = "<!-- begin: written by make bench -->", "<!-- end: written by make bench -->"
BENCH_VENV = ROOT / ".bench-venv"
DICOGNITO = "dicognito==0.19.0"
PYDICOM = "pydicom==3.0.2"  # the same pydicom as the plugin, for dicognito
SECRET = "bench-secret"
T = TypeVar("T")


# --- measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Measure:
    """Seconds of each repeat of one case, and what it did."""

    name: str
    instances: int
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def rate(self) -> float:
        return self.instances / self.median if self.seconds else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Instances": self.instances,
            "Seconds": self.seconds,
            "Median": self.median,
            "InstancesPerSecond": self.rate,
            **self.extra,
        }


def timed(action: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """Seconds ``action(*args, **kwargs)`` took, and what it returned."""
    started = time.perf_counter()
    result = action(*args, **kwargs)
    return time.perf_counter() - started, result


class PeakMemory:
    """Samples the RSS of a process, and of it with its children, every few milliseconds, in a thread."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_with_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        # Orthanc runs ~110 threads: listing its children means reading a file per thread, which every 5 ms took a
        # good part of a core from the plugin's workers (not from the built-in, one thread). The worker processes
        # change rarely: listed again every half second.
        listed, processes = 0.0, []
        while not self._stop.is_set():
            if time.monotonic() - listed > 0.5:
                listed, processes = time.monotonic(), _children(self.pid)
            own = _rss(self.pid)
            children = sum(_rss(child) for child in processes)
            self.peak = max(self.peak, own)
            self.peak_with_children = max(self.peak_with_children, own + children)
            time.sleep(self.interval)


def _rss(pid: int) -> int:
    """Resident set size in bytes (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by a process, and by its living children (the plugin's workers)."""

    def used(process: int) -> float:
        try:
            with open(f"/proc/{process}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return used(pid), sum(used(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
    return found


# --- Orthanc -------------------------------------------------------------------------------------------------------


class Bench:
    """One Orthanc with the plugin, and the REST calls each case makes."""

    def __init__(self, folder: Path, overrides: dict[str, Any] | None = None, prefix: list[str] | None = None) -> None:
        self.server = OrthancServer(folder, overrides, secret=SECRET, prefix=prefix).start()
        self.session = requests.Session()
        self.session.trust_env = False
        self.url: str = self.server.url
        self.session.headers["Accept-Encoding"] = "identity"

    def stop(self) -> None:
        self.session.close()
        self.server.stop()

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return int(self.server.process.pid)

    def ingest(self, files: list[bytes]) -> str:
        """POST /instances of every file, one connection, one after the other; the study's ID."""
        studies = set()
        for data in files:
            response = self.session.post(
                self.url + "/instances", data=data, headers={"Content-Type": "application/dicom", "Expect": ""}
            )
            response.raise_for_status()
            studies.add(response.json()["ParentStudy"])
        assert len(studies) == 1, studies
        return str(studies.pop())

    def delete(self, level: str, resource: str | None) -> None:
        if resource:
            self.session.delete(f"{self.url}/{level}/{resource}").raise_for_status()

    def plugin(self, study: str, instances: int) -> str:
        """The plugin's study route, synchronous, Basic profile; the copy's ID (checked complete)."""
        response = self.session.post(f"{self.url}/anonymizer/studies/{study}", json={}, timeout=3600)
        response.raise_for_status()
        answer = response.json()
        assert answer["Instances"] == instances and not answer["Failed"], {k: answer[k] for k in ("Instances",)}
        copy = str(answer["Resource"])
        meta = self.session.get(f"{self.url}/studies/{copy}/metadata/AnonymizedFromResource")
        assert meta.text == study, "the copy is not linked to its original"
        return copy

    def builtin(self, study: str, instances: int) -> str:
        """Orthanc's own anonymization of the study (C++, Basic profile), synchronous; the copy's ID."""
        response = self.session.post(f"{self.url}/studies/{study}/anonymize", json={"Synchronous": True}, timeout=3600)
        response.raise_for_status()
        copy = str(response.json()["ID"])
        count = self.session.get(f"{self.url}/studies/{copy}/statistics").json()["CountInstances"]
        assert count == instances, count
        return copy


def case_orthanc(bench: Bench, files: list[bytes], repeat: int, key: str = "", about: str = "") -> dict[str, Measure]:
    """(a) plain ingest, the plugin and Orthanc's anonymizer, interleaved; originals re-ingested each repeat. The
    measures are named ``ingest``, ``plugin`` and ``builtin`` followed by ``key``, described with ``about``."""
    count = len(files)
    ingest = Measure(f"Orthanc plain ingest, POST /instances, one connection{about}", count)
    plugin = Measure(f"plugin POST /anonymizer/studies/{{id}} (Basic, stored and linked){about}", count)
    builtin = Measure(f"Orthanc built-in POST /studies/{{id}}/anonymize (synchronous){about}", count)
    study = bench.ingest(files)  # warm-up: the files in the page cache, Orthanc's database created
    bench.delete("studies", bench.plugin(study, count))
    bench.delete("studies", bench.builtin(study, count))
    for number in range(repeat):
        bench.delete("studies", study)
        before = cpu_seconds(bench.pid)
        seconds, study = timed(bench.ingest, files)
        after = cpu_seconds(bench.pid)
        ingest.seconds.append(seconds)
        ingest.extra.setdefault("OrthancCpuMsPerInstance", []).append(1000 * (after[0] - before[0]) / count)
        ingest.extra.setdefault("WorkersCpuMsPerInstance", []).append(0.0)
        order = [(plugin, bench.plugin), (builtin, bench.builtin)]
        for measure, run in order if number % 2 == 0 else order[::-1]:
            before = cpu_seconds(bench.pid)
            seconds, copy = timed(run, study, count)
            after = cpu_seconds(bench.pid)
            measure.seconds.append(seconds)
            # Where the time goes: CPU per instance in Orthanc (its HTTP threads, the plugin's job threads) and in
            # the plugin's worker processes. Two cores are shared by both.
            measure.extra.setdefault("OrthancCpuMsPerInstance", []).append(1000 * (after[0] - before[0]) / count)
            measure.extra.setdefault("WorkersCpuMsPerInstance", []).append(1000 * (after[1] - before[1]) / count)
            bench.delete("studies", copy)
        print(
            f"  repeat {number + 1}: ingest {ingest.seconds[-1]:.2f} s, plugin {plugin.seconds[-1]:.2f} s, "
            f"built-in {builtin.seconds[-1]:.2f} s",
            flush=True,
        )
    bench.delete("studies", study)
    return {f"ingest{key}": ingest, f"plugin{key}": plugin, f"builtin{key}": builtin}


# The configuration of an outside check that measured the plugin slower than in (a): Orthanc's defaults but for a
# SQLite index (orthanc.json's too), no storage compression and StableAge 2; the plugin's defaults. Over orthanc.json
# (100 HTTP threads, OverwriteInstances, the Python plugin's AllowThreads) its settings go back to their defaults;
# the plugin keeps what it needs (its PythonScript and UserMetadata).
MINIMAL = {
    "HttpThreadsCount": 50,
    "OverwriteInstances": False,
    "Python": {},
    "StorageCompression": False,
    "StableAge": 2,
    "Anonymizer": {"Workers": os.cpu_count() or 1, "ConcurrentJobs": 2},  # the plugin's defaults
}


def case_series(folder: Path, count: int, repeat: int) -> dict[str, Measure]:
    """(a') the same as (a) on a study of ``count`` CT images in ONE series, in an Orthanc of :data:`MINIMAL`
    configuration; the measures are named ``ingest-series``, ``plugin-series`` and ``builtin-series``."""
    files = ct_study(count, seed=11, series_size=count)
    bench = Bench(folder / "single-series", MINIMAL)
    try:
        return case_orthanc(bench, files, repeat, "-series", f", one series of {count}, minimal configuration")
    finally:
        bench.stop()


def case_cores(folder: Path, files: list[bytes], cores: list[int], repeat: int) -> dict[str, Measure]:
    """(g) (a) again in a fresh Orthanc per core count, pinned with ``taskset -c`` to that many cores (its worker
    processes inherit the affinity), with ``Anonymizer.Workers`` as many (the plugin's default on such a machine);
    the measures are named ``ingest-cores{n}``, ``plugin-cores{n}`` and ``builtin-cores{n}``."""
    available = sorted(os.sched_getaffinity(0))
    measures: dict[str, Measure] = {}
    for number in cores:
        if number > len(available):
            print(f"  {number} cores: only {len(available)} available, skipped", flush=True)
            continue
        cpus = ",".join(str(cpu) for cpu in available[:number])
        print(f"  taskset -c {cpus}", flush=True)
        bench = Bench(folder / f"cores-{number}", {"Anonymizer": {"Workers": number}}, ["taskset", "-c", cpus])
        try:
            measures.update(case_orthanc(bench, files, repeat, f"-cores{number}", f", taskset -c {cpus}"))
        finally:
            bench.stop()
        for measure in (measures[f"plugin-cores{number}"], measures[f"builtin-cores{number}"]):
            measure.extra["Cores"] = number
    return measures


def case_requests(bench: Bench, files: list[bytes], repeat: int) -> list[dict[str, Any]]:
    """(f) The requests one copy costs, one kind at a time over the plugin's own client (:mod:`.orthanc_client`):
    wall time, CPU in Orthanc (its HTTP threads) and CPU in the client (inside Orthanc, that is under the GIL)."""
    from orthanc_anonymizer.server.orthanc_client import OrthancClient

    client = OrthancClient(bench.url)
    profile = json.dumps({"Profile": "basic", "Options": [], "Rules": [], "Edition": "2026d", "EngineVersion": "0"})
    rows: list[dict[str, Any]] = []
    for _ in range(max(1, min(repeat, 3))):
        stored: list[dict[str, Any]] = []
        ids: list[str] = []
        kinds: list[tuple[str, Callable[[Any], Any], list[Any]]] = [
            ("POST /instances (store a 530 KB copy)", client.store_instance, files),
            ("GET /instances/{id}/file (download the original)", client.instance_file, ids),
            ("PUT /instances/{id}/metadata (one of the two)", lambda i: client.put_metadata(
                "instances", i, "AnonymizationProfile", profile), ids),
            ("GET /instances/{id}/attachments/dicom/md5 (InPlace check)", client.stored_md5, ids),
        ]  # fmt: skip
        for name, call, items in kinds:
            orthanc_before, client_before = cpu_seconds(bench.pid)[0], time.process_time()
            seconds, answers = timed(lambda call=call, items=items: [call(item) for item in items])
            orthanc_after, client_after = cpu_seconds(bench.pid)[0], time.process_time()
            if not ids:
                stored = answers
                ids.extend(str(answer["ID"]) for answer in stored)
            count = len(items)
            rows.append({
                "Request": name,
                "WallMs": 1000 * seconds / count,
                "OrthancCpuMs": 1000 * (orthanc_after - orthanc_before) / count,
                "ClientCpuMs": 1000 * (client_after - client_before) / count,
            })  # fmt: skip
        bench.delete("studies", str(stored[0]["ParentStudy"]))
    client.close()
    merged: list[dict[str, Any]] = []
    for name in dict.fromkeys(row["Request"] for row in rows):
        same = [row for row in rows if row["Request"] == name]
        merged.append(
            {"Request": name, **{k: statistics.median(r[k] for r in same) for k in same[0] if k != "Request"}}
        )
    return merged


def case_storescu(bench: Bench, folder: Path, count: int, repeat: int) -> dict[str, Measure]:
    """(b) baseline: storescu bursts of the CT study into Orthanc without auto-anonymization."""
    burst = Measure("storescu burst of the CT study (TCP_NODELAY=1), AutoAnonymize off", count)
    environ = {**os.environ, "TCP_NODELAY": "1"}
    command = [
        "storescu", "-aet", "BENCH", "-aec", "ORTHANC", "127.0.0.1", str(bench.server.dicom_port), "+sd", str(folder),
    ]  # fmt: skip
    study = None
    for _ in range(repeat):
        bench.delete("studies", study)
        burst.seconds.append(timed(subprocess.run, command, env=environ, check=True, capture_output=True)[0])
        studies = bench.session.get(bench.url + "/studies").json()
        study = studies[0] if len(studies) == 1 else None
    bench.delete("studies", study)
    return {"storescu": burst}


def case_ingest(folder: Path, count: int, repeat: int) -> dict[str, Measure]:
    """(b) on ingest: the same storescu burst (small instances, 5 studies interleaved) into a fresh Orthanc without
    and with AutoAnonymize, alternately (:mod:`bench.ingest_rate`); the lag of the last copy after the last
    original, and the time the same copies take on the same Orthanc once idle (one batch job of the burst)."""
    from bench.ingest_rate import one_run

    plain = Measure("storescu burst, small instances, AutoAnonymize off", count)
    auto = Measure("storescu burst, small instances, AutoAnonymize on (Basic)", count)
    idle = Measure("the same copies on the idle Orthanc, POST /anonymizer/batch of the burst's studies", count)
    lags: list[float] = []
    for number in range(repeat):
        plain.seconds.append(count / one_run(folder / f"ingest-plain-{number}", count, auto=False).rate)
        burst = one_run(folder / f"ingest-auto-{number}", count, auto=True)
        assert burst.lag is not None and burst.idle is not None
        auto.seconds.append(count / burst.rate)
        lags.append(burst.lag)
        idle.seconds.append(burst.idle)
        print(f"  repeat {number + 1}: without {plain.seconds[-1]:.2f} s, with {auto.seconds[-1]:.2f} s, "
              f"last copy {burst.lag:.2f} s after the last original; the same copies on the idle Orthanc "
              f"{burst.idle:.2f} s", flush=True)  # fmt: skip
    auto.extra["LastCopyLagSeconds"] = lags
    auto.extra["MedianLastCopyLagSeconds"] = statistics.median(lags)
    # Each repeat's lag over its own idle time (the same Orthanc, seconds later), then their median.
    auto.extra["LagOverIdle"] = [lag / seconds for lag, seconds in zip(lags, idle.seconds, strict=True)]
    auto.extra["MedianLagOverIdle"] = statistics.median(auto.extra["LagOverIdle"])
    return {"ingest-plain": plain, "ingest-auto": auto, "ingest-idle": idle}


def case_growth(folder: Path, sizes: list[int], repeat: int) -> dict[str, Measure]:
    """(d) and (e): on a fresh Orthanc per size, the plugin's time per instance and its peak memory."""
    measures: dict[str, Measure] = {}
    for size in sizes:
        bench = Bench(folder / f"growth-{size}")
        try:
            files = small_study(size, name=f"Growthperson^N{size}")
            study = bench.ingest(files)
            bench.delete("studies", bench.plugin(study, size))  # warm-up: the worker processes started
            measure = Measure(f"plugin, study of {size} small instances", size)
            builtin = Measure(f"Orthanc built-in anonymize, study of {size} small instances", size)
            idle = _rss(bench.pid)
            for number in range(repeat):
                with PeakMemory(bench.pid) as memory:
                    seconds, copy = timed(bench.plugin, study, size)
                measure.seconds.append(seconds)
                bench.delete("studies", copy)
                if number == 0:
                    measure.extra.update(
                        RssBefore=idle, PeakRss=memory.peak, PeakRssWithWorkers=memory.peak_with_children
                    )
                before = _rss(bench.pid)
                with PeakMemory(bench.pid) as memory:
                    seconds, copy = timed(bench.builtin, study, size)
                builtin.seconds.append(seconds)
                bench.delete("studies", copy)
                if number == 0:  # the same measure of Orthanc's own anonymizer, for comparison (no workers)
                    builtin.extra.update(RssBefore=before, PeakRss=memory.peak, PeakRssWithWorkers=memory.peak)
            measures[f"growth-{size}"] = measure
            measures[f"growth-builtin-{size}"] = builtin
            print(
                f"  {size} instances: plugin {1000 * measure.median / size:.2f} ms/instance, "
                f"built-in {1000 * builtin.median / size:.2f}",
                flush=True,
            )
        finally:
            bench.stop()
    return measures


# --- the CLI and its alternatives ----------------------------------------------------------------------------------


def bench_venv() -> Path:
    """``.bench-venv/`` with dicognito (pinned) and pyinstrument, made on first use; its python."""
    python = BENCH_VENV / "bin" / "python"
    marker = BENCH_VENV / ".installed"
    wanted = f"{DICOGNITO} {PYDICOM} pyinstrument==5.1.1"
    if not marker.exists() or marker.read_text() != wanted:
        print(f"installing {wanted} into {BENCH_VENV.relative_to(ROOT)}/", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted.split()], check=True)
        marker.write_text(wanted)
    return python


_PYDICOM_SCRIPT = """
import sys
from pathlib import Path
from pydicom import dcmread
source, destination = Path(sys.argv[1]), Path(sys.argv[2])
for path in sorted(source.iterdir()):
    ds = dcmread(path)
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "ANON"
    ds.PatientBirthDate = ""
    ds.save_as(destination / path.name)
"""


def case_cli(folder: Path, work: Path, count: int, repeat: int, jobs: int, patients: str = "") -> dict[str, Measure]:
    """(c) the CLI, dicognito and plain pydicom on the same folder, interleaved; each writes a fresh folder. With
    ``patients`` (the folder holds a patient an image, say so), the CLI and dicognito only, keyed ``cli-patients``
    and ``dicognito-patients``."""
    python = bench_venv()
    suffix = f", {patients}" if patients else ""
    cli = Measure(f"orthanc-anonymizer anonymize --jobs {jobs} (Basic){suffix}", count)
    dicognito = Measure(f"dicognito {DICOGNITO.split('==')[1]} CLI{suffix}", count)
    plain = Measure("pydicom read + 3 tags + write (one process)", count)
    environ = {**os.environ, "ANONYMIZER_SECRET": SECRET}
    venv_bin = Path(sys.executable).parent
    commands: list[tuple[Measure, Callable[[Path], list[str]]]] = [
        (cli, lambda out: [str(venv_bin / "orthanc-anonymizer"), "anonymize", str(folder), str(out), "--jobs", str(jobs)]),
        (dicognito, lambda out: [str(python), "-m", "dicognito", "--quiet", "--output-directory", str(out), str(folder)]),
    ] + ([] if patients else [(plain, lambda out: [sys.executable, "-c", _PYDICOM_SCRIPT, str(folder), str(out)])])  # fmt: skip
    for number in range(repeat + 1):  # the first round warms the page cache and is not counted
        for measure, command in commands if number % 2 else commands[::-1]:
            out = work / "cli-out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            seconds, _ = timed(subprocess.run, command(out), env=environ, check=True, capture_output=True)
            written = sum(1 for _ in out.rglob("*") if _.is_file())
            assert written == count, f"{measure.name}: {written} of {count} files written"
            if number:
                measure.seconds.append(seconds)
        if number:
            print(
                f"  repeat {number}: CLI {cli.seconds[-1]:.2f} s, dicognito {dicognito.seconds[-1]:.2f} s"
                + ("" if patients else f", pydicom {plain.seconds[-1]:.2f} s"),
                flush=True,
            )
    shutil.rmtree(work / "cli-out", ignore_errors=True)
    if patients:
        return {"cli-patients": cli, "dicognito-patients": dicognito}
    return {"cli": cli, "dicognito": dicognito, "pydicom": plain}


# --- report --------------------------------------------------------------------------------------------------------


@dataclass
class Goal:
    text: str
    value: float
    limit: float
    at_most: bool = True
    informative: bool = False
    """An earlier issue's goal, reported for comparison: not one of issue 18's, never failing ``--strict``."""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def line(self) -> str:
        sign = "<=" if self.at_most else ">="
        return f"{'PASS' if self.passed else 'FAIL'}  {self.text}: {self.value:.3f} (goal {sign} {self.limit:g})"


def goals(measures: dict[str, Measure], skipped: dict[str, str]) -> list[Goal]:
    """Issue 18's goals measured in this run, then (``informative``) issue 6's that are not among them."""
    found: list[Goal] = []
    kept: list[Goal] = []
    if "plugin" in measures:
        plugin = measures["plugin"]
        found.append(
            Goal(
                f"plugin / Orthanc built-in anonymize, {plugin.instances} CT images in series of {SERIES_SIZE} (time)",
                plugin.median / measures["builtin"].median,
                0.9,
            )
        )
        kept.append(Goal("plugin / plain ingest (time)", plugin.median / measures["ingest"].median, 1.15))
    if "plugin-series" in measures:
        plugin = measures["plugin-series"]
        found.append(
            Goal(
                f"plugin / Orthanc built-in anonymize, {plugin.instances} CT images in one series, minimal "
                "configuration (time)",
                plugin.median / measures["builtin-series"].median,
                0.9,
            )
        )
    growth = sorted(
        (m for key, m in measures.items() if key.startswith("growth-") and "builtin" not in key),
        key=lambda m: m.instances,
    )
    if growth and f"growth-builtin-{growth[-1].instances}" in measures:
        large = growth[-1]
        found.append(
            Goal(
                f"plugin / Orthanc built-in anonymize, {large.instances} small instances (time)",
                large.median / measures[f"growth-builtin-{large.instances}"].median,
                0.4,
            )
        )
    if "ingest-auto" in measures:
        auto = measures["ingest-auto"]
        found.append(
            Goal("storescu rate with / without AutoAnonymize", auto.rate / measures["ingest-plain"].rate, 0.9, False)
        )
        found.append(
            Goal(
                "last copy after the last original / the same copies on the idle Orthanc (time)",
                auto.extra["MedianLagOverIdle"],
                1.2,
            )
        )
        kept.append(Goal("seconds from the last original to its last copy", auto.extra["MedianLastCopyLagSeconds"], 2))
    if "cli" in measures:
        found.append(
            Goal(
                f"{measures['cli'].name.split(' (')[0]} / dicognito (throughput)",
                measures["cli"].rate / measures["dicognito"].rate,
                5.0,
                at_most=False,
            )
        )
    if len(growth) >= 2:
        small, large = growth[-2], growth[-1]
        if "PeakRss" in large.extra and "PeakRss" in small.extra:
            found.append(
                Goal(
                    f"peak RSS of Orthanc, {large.instances} / {small.instances} instances",
                    large.extra["PeakRss"] / small.extra["PeakRss"],
                    1.10,
                )
            )
            builtin_small = measures.get(f"growth-builtin-{small.instances}")
            builtin_large = measures.get(f"growth-builtin-{large.instances}")
            if builtin_small and builtin_large and "PeakRss" in builtin_large.extra:
                # Not a goal: how Orthanc's own anonymizer fares on the same measure, in the same run.
                skipped["(for comparison) Orthanc built-in anonymize, the same ratio"] = (
                    f"{builtin_large.extra['PeakRss'] / builtin_small.extra['PeakRss']:.3f}"
                )
            mib = 1024 * 1024
            skipped[f"(for comparison) peak RSS over RSS before the job, {large.instances} and {small.instances}"] = (
                f"+{(large.extra['PeakRss'] - large.extra['RssBefore']) / mib:.1f} MiB and "
                f"+{(small.extra['PeakRss'] - small.extra['RssBefore']) / mib:.1f} MiB (the plugin's own share)"
            )
            kept.append(
                Goal(
                    f"peak RSS of Orthanc with its workers, {large.instances} / {small.instances} instances",
                    large.extra["PeakRssWithWorkers"] / small.extra["PeakRssWithWorkers"],
                    1.10,
                )
            )
        for before, after in itertools.pairwise(growth):
            per_before = before.median / before.instances
            per_after = after.median / after.instances
            kept.append(
                Goal(
                    f"time per instance, {after.instances} / {before.instances} instances",
                    per_after / per_before,
                    1.15,
                )
            )
    for goal in kept:
        goal.informative = True
    return found + kept


def goal_rows(checks: list[Goal]) -> list[str]:
    return [
        f"| {g.text} | {g.value:.3f} | {'<=' if g.at_most else '>='} {g.limit:g} | {'PASS' if g.passed else 'FAIL'} |"
        for g in checks
    ]


def cores_table(measures: dict[str, Measure]) -> list[str]:
    """(g) the plugin and the built-in on 1, 2, ... cores: seconds, their ratio, and the speed-up over the fewest."""
    counts = sorted(m.extra["Cores"] for k, m in measures.items() if k.startswith("plugin-cores"))
    if not counts:
        return []
    fewest = counts[0]
    first = measures[f"plugin-cores{fewest}"]
    lines = [
        f"How the {first.instances}-image CT study scales with cores (Orthanc and its workers pinned by `taskset -c`, "
        "`Anonymizer.Workers` = cores; a fresh Orthanc each, medians):",
        "",
        f"| cores | plugin s | built-in s | plugin / built-in | plugin speed-up over {fewest} | "
        f"built-in speed-up over {fewest} | plain ingest s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number in counts:
        plugin, builtin = measures[f"plugin-cores{number}"], measures[f"builtin-cores{number}"]
        lines.append(
            f"| {number} | {plugin.median:.2f} | {builtin.median:.2f} | {plugin.median / builtin.median:.2f} | "
            f"{first.median / plugin.median:.2f} | {measures[f'builtin-cores{fewest}'].median / builtin.median:.2f} | "
            f"{measures[f'ingest-cores{number}'].median:.2f} |"
        )
    return lines


def table(measures: dict[str, Measure], baselines: dict[str, str]) -> str:
    lines = [
        "| case | instances | median s | instances/s | ratio (time) to | runs (s) |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for key, measure in measures.items():
        base = baselines.get(key)
        ratio = ""
        if base and base in measures:
            ratio = f"{measure.median / measures[base].median:.2f}x {measures[base].name.split(',')[0]}"
        runs = ", ".join(f"{s:.2f}" for s in measure.seconds)
        lines.append(
            f"| {measure.name} | {measure.instances} | {measure.median:.2f} | {measure.rate:.0f} | {ratio} | {runs} |"
        )
    cpu = [m for m in measures.values() if "OrthancCpuMsPerInstance" in m.extra]
    if cpu:
        lines += [
            "",
            "| CPU per instance (medians) | Orthanc process | plugin's worker processes | total |",
            "| --- | ---: | ---: | ---: |",
        ]
        for measure in cpu:
            orthanc = statistics.median(measure.extra["OrthancCpuMsPerInstance"])
            workers = statistics.median(measure.extra["WorkersCpuMsPerInstance"])
            lines.append(f"| {measure.name} | {orthanc:.1f} ms | {workers:.1f} ms | {orthanc + workers:.1f} ms |")
    memory = [m for m in measures.values() if "PeakRss" in m.extra]
    if memory:
        lines += [
            "",
            "| case (one fresh Orthanc per size) | ms/instance | Orthanc RSS before | peak RSS | peak over before | "
            "peak RSS with workers |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for measure in memory:
            mib = 1024 * 1024
            lines.append(
                f"| {measure.name} | {1000 * measure.median / measure.instances:.2f} | "
                f"{measure.extra['RssBefore'] / mib:.0f} MiB | {measure.extra['PeakRss'] / mib:.0f} MiB | "
                f"{(measure.extra['PeakRss'] - measure.extra['RssBefore']) / mib:+.1f} MiB | "
                f"{measure.extra['PeakRssWithWorkers'] / mib:.0f} MiB |"
            )
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3

    # ORTHANC_COMMAND (as for the tests) runs another Orthanc, e.g. a compat root's through its wrapper script: the
    # versions are asked through the same wrapper.
    wrapper = shlex.split(os.environ.get("ORTHANC_COMMAND", ""))[:-1]

    def version(package: str) -> str:
        query = [*wrapper, "dpkg-query", "-W", "-f=${Version}", package]
        return subprocess.run(query, capture_output=True, text=True).stdout or "?"

    python = platform.python_version()
    if wrapper:
        answer = subprocess.run([*wrapper, "python3", "--version"], capture_output=True, text=True).stdout
        python = answer.split()[-1] if answer.strip() else "?"
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GB; Orthanc {version('orthanc')}, "
        f"orthanc-python {version('orthanc-python')}; Python {python} (Orthanc's)"
        + (f"; ORTHANC_COMMAND={os.environ['ORTHANC_COMMAND']}" if wrapper else "")
    )


class LoadSampler:
    """The machine's 1-minute load average, sampled every 30 s for the whole run: what else was running."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(30):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])
        own = "this benchmark keeps about 2 cores busy by itself"
        return (
            f"load average (1 min) {self.samples[0]:.1f} at the start, median {statistics.median(self.samples):.1f} "
            f"and peak {max(self.samples):.1f} over the run, {self.samples[-1]:.1f} at the end ({own})"
        )


def plot(measures: dict[str, Measure], path: Path) -> bool:
    """Time per instance against study size (the growth case), each repeat a point, medians joined."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (make bench installs it): no plot", flush=True)
        return False
    series = {
        "plugin (Basic, stored and linked)": sorted(
            (m for k, m in measures.items() if k.startswith("growth-") and "builtin" not in k),
            key=lambda m: m.instances,
        ),
        "Orthanc built-in anonymize": sorted(
            (m for k, m in measures.items() if k.startswith("growth-builtin-")), key=lambda m: m.instances
        ),
    }
    if not any(series.values()):
        return False
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for (label, points), colour in zip(series.items(), ("tab:blue", "tab:grey"), strict=True):
        if not points:
            continue
        sizes = [m.instances for m in points]
        axes.plot(sizes, [1000 * m.median / m.instances for m in points], "-o", color=colour, label=label)
        for m in points:
            axes.plot([m.instances] * len(m.seconds), [1000 * s / m.instances for s in m.seconds], ".", color=colour,
                      alpha=0.4)  # fmt: skip
    axes.set_xscale("log")
    sizes = sorted({m.instances for points in series.values() for m in points})
    axes.set_xticks(sizes, [str(size) for size in sizes])
    axes.minorticks_off()
    axes.set_xlabel("instances in the study (16x16 CT images)")
    axes.set_ylabel("ms per instance (median; dots: each repeat)")
    axes.set_ylim(bottom=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    axes.set_title("Time per instance against study size, one Orthanc each size")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def write_report(generated: list[str], path: Path) -> None:
    """``generated`` between the markers of ``path``; what follows the end marker (notes by hand) is kept."""
    kept = ""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if END in text:
            kept = text.split(END, 1)[1]
    path.write_text("\n".join([BEGIN, *generated, END]) + (kept or "\n"), encoding="utf-8")


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="anonymizer-bench-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


CASES = ("orthanc", "series", "cores", "requests", "storescu", "cli", "growth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=300, help="instances of the CT study (default 300)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each timed case (default 5)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="CLI --jobs (default: the cores)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ",".join(CASES))
    parser.add_argument(
        "--series-instances", type=int, default=200, help="instances of the single-series CT study (default 200)"
    )
    parser.add_argument("--cores", default="1,2", help="core counts of the scaling case (default 1,2)")
    parser.add_argument("--burst", type=int, default=1000, help="instances of the on-ingest burst (default 1000)")
    parser.add_argument("--growth-sizes", default="10,200,2000", help="study sizes of the growth and memory cases")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (studies, Orthanc logs)")
    args = parser.parse_args(argv)
    args.cases_given = any(arg.startswith("--cases") for arg in (argv if argv is not None else sys.argv[1:]))
    cases = set(args.cases.split(","))
    measures: dict[str, Measure] = {}
    skipped: dict[str, str] = {}
    started = time.time()
    about = machine()
    load = LoadSampler()
    requests_cost: list[dict[str, Any]] = []
    print(f"machine: {about}", flush=True)
    with workspace(args.keep) as work:
        print(f"generating {args.instances} CT-like instances (512x512, 16-bit) under {work}", flush=True)
        files = ct_study(args.instances)
        folder = write_folder(files, work / "ct")
        if cases & {"orthanc", "storescu", "requests"}:
            bench = Bench(work / "orthanc")
            try:
                if "orthanc" in cases:
                    print("(a) inside Orthanc", flush=True)
                    measures.update(case_orthanc(bench, files, args.repeat))
                if "requests" in cases:
                    print("(f) what each request of a copy costs", flush=True)
                    requests_cost = case_requests(bench, files, args.repeat)
                if "storescu" in cases:
                    print("(b) storescu", flush=True)
                    measures.update(case_storescu(bench, folder, len(files), args.repeat))
            finally:
                bench.stop()
        if "series" in cases:
            print(f"(a') {args.series_instances} CT images in one series, minimal configuration", flush=True)
            measures.update(case_series(work, args.series_instances, args.repeat))
        if "cores" in cases:
            print(f"(g) the CT study on {args.cores} cores (taskset)", flush=True)
            cores = [int(number) for number in args.cores.split(",")]
            measures.update(case_cores(work, files, cores, max(1, min(args.repeat, 3))))
        del files
        if "storescu" in cases:
            print(f"(b) on ingest: storescu bursts of {args.burst} small instances, without and with AutoAnonymize")
            measures.update(case_ingest(work, args.burst, args.repeat))
        if "cli" in cases:
            print(f"(c) CLI --jobs {args.jobs} vs dicognito vs pydicom", flush=True)
            measures.update(case_cli(folder, work, args.instances, args.repeat, args.jobs))
            # The same images, a patient each: what a patient's first image costs (a folder of scouts, radiographs).
            print(f"(c') the same, {args.instances} CT images of a patient each", flush=True)
            patients = write_folder(ct_study(args.instances, patient_each=True), work / "ct-patients")
            measures.update(case_cli(patients, work, args.instances, args.repeat, args.jobs, "a patient each"))
        if "growth" in cases:
            print("(d, e) memory and growth", flush=True)
            sizes = [int(size) for size in args.growth_sizes.split(",")]
            measures.update(case_growth(work, sizes, max(1, min(args.repeat, 3))))
    baselines = {
        "plugin": "builtin",
        "ingest": "builtin",
        "plugin-series": "builtin-series",
        "ingest-series": "builtin-series",
        **{
            key: "builtin-" + key.split("-", 1)[1]
            for key in measures
            if key.startswith(("plugin-cores", "ingest-cores"))
        },
        "dicognito": "cli",
        "pydicom": "cli",
        "dicognito-patients": "cli-patients",
        "ingest-auto": "ingest-plain",
    }
    text = table(measures, baselines)
    checks = goals(measures, skipped)
    conditions = load.stop()
    command = "make bench" if argv is None and len(sys.argv) == 1 else "python -m bench.run " + " ".join(sys.argv[1:])
    minutes = (time.time() - started) / 60
    report = [
        f"# Benchmark results ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))})",
        "",
        f"- Machine: {about}.",
        f"- Load: {conditions}.",
        f"- Command: `{command}` ({minutes:.0f} min). Medians of {args.repeat} repeats (growth, cores: up to 3); every "
        "ratio is taken between cases measured in this run, interleaved.",
        "",
        "Goals (issue 18), as ratios measured in this run:",
        "",
        "| goal | value | limit | |",
        "| --- | ---: | ---: | --- |",
        *goal_rows([g for g in checks if not g.informative]),
    ]
    compared = [*goal_rows([g for g in checks if g.informative]), *[f"| {k} | {v} | | |" for k, v in skipped.items()]]
    if compared:
        report += [
            "",
            "For comparison (issue 6's other goals, not counted):",
            "",
            "| measure | value | issue 6 limit | |",
            "| --- | ---: | ---: | --- |",
            *compared,
        ]
    report += ["", text]
    scaling = cores_table(measures)
    if scaling:
        report += ["", *scaling]
    if requests_cost:
        report += [
            "",
            "What each request of a copy costs (the plugin's loopback client, one kind at a time, medians; the "
            "client's CPU is spent inside Orthanc, under the GIL):",
            "",
            "| request | wall | Orthanc CPU | client CPU |",
            "| --- | ---: | ---: | ---: |",
            *[
                f"| {r['Request']} | {r['WallMs']:.2f} ms | {r['OrthancCpuMs']:.2f} ms | {r['ClientCpuMs']:.2f} ms |"
                for r in requests_cost
            ],
        ]
    full = not (args.cases_given or args.instances != 300 or args.series_instances != 200 or args.cores != "1,2")
    RESULTS.mkdir(parents=True, exist_ok=True)
    picture = PLOT if full else RESULTS / PLOT.name  # a partial run leaves the committed plot alone
    if plot(measures, picture):
        report += ["", f"![time per instance against study size]({PLOT.name})"]
    (RESULTS / "results.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    if full:
        write_report(report, REPORT)
    else:
        print(
            f"a partial run (--cases, --instances, --series-instances, --cores): {REPORT.relative_to(ROOT)} left as it is",
            flush=True,
        )
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "Started": started,
                "Machine": about,
                "Command": command,
                "Measures": {key: measure.as_json() for key, measure in measures.items()},
                "Goals": [
                    {"Goal": g.text, "Value": g.value, "Limit": g.limit, "Pass": g.passed, "Informative": g.informative}
                    for g in checks
                ],
                "Skipped": skipped,
                "Load": conditions,
                "RequestCosts": requests_cost,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print("\n".join(report))
    print(f"written: {RESULTS.relative_to(ROOT)}/results.md, results.json, {picture.relative_to(ROOT)}")
    return 1 if args.strict and not all(goal.passed for goal in checks if not goal.informative) else 0


if __name__ == "__main__":
    sys.exit(main())
