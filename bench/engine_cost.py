"""The engine's cost per CT image in instructions, counted by valgrind: a measure that does not move with the
machine's load, for comparing two versions of the engine (timings on the shared bench machine move by 20% from one
minute to the next, more with two processes at once).

::

    .venv/bin/python -m bench.engine_cost            # the CLI's path: read, de-identify, write
    .venv/bin/python -m bench.engine_cost --plugin   # a worker's: the residual-PHI check and the copy's Orthanc ID too
    .venv/bin/python -m bench.engine_cost --patient-each   # each image of a patient of its own

It anonymizes 10, then 60, of :func:`bench.studies.ct_study`'s images in one process under
``valgrind --tool=callgrind`` and prints the difference over 50: one image's instructions, start-up and imports
left out, with a fixed hash seed (a random one moved the count by up to 4%). Two runs of the same code agree to 0.5%.
``PYTHONPATH=<a checkout>/plugin`` measures another version of the engine. Needs Debian's ``valgrind`` (not part of
``make bench``); takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.studies import ct_study

FEW, MANY = 10, 60
_COLLECTED = re.compile(r"Collected : (\d+)")


def _anonymize(files_path: Path, count: int, plugin: bool) -> None:
    """Under valgrind: ``count`` anonymizations, after one that loads what the first image needs."""
    from orthanc_anonymizer.deid.settings import AnonymizationSettings
    from orthanc_anonymizer.pipeline import InstanceTask, anonymize_instance

    files: list[bytes] = pickle.loads(files_path.read_bytes())
    task = InstanceTask(AnonymizationSettings(), check_residual=plugin, orthanc_identity=plugin)
    assert anonymize_instance(files[0], task).failure is None
    for number in range(count):
        outcome = anonymize_instance(files[number % len(files)], task)
        assert outcome.failure is None, outcome.reason


def _instructions(files_path: Path, count: int, plugin: bool) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "bench.engine_cost", "--run", str(count), "--files", str(files_path),
    ] + (["--plugin"] if plugin else [])  # fmt: skip
    # A fixed hash seed: set and dict orders (and with them the work) the same in every run.
    environ = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=environ)
    match = _COLLECTED.search(result.stderr)
    assert match is not None, "valgrind printed no instruction count"
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="store_true", help="with the residual-PHI check and the Orthanc ID")
    parser.add_argument("--patient-each", action="store_true", help="each image of a patient of its own")
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the process valgrind runs
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        _anonymize(args.files, args.run, args.plugin)
        return 0
    if shutil.which("valgrind") is None:
        print("bench.engine_cost: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        files_path = Path(folder) / "ct.pickle"
        files_path.write_bytes(pickle.dumps(ct_study(MANY, series_size=MANY, patient_each=args.patient_each)))
        few, many = (_instructions(files_path, count, args.plugin) for count in (FEW, MANY))
    path = "a worker's path (residual-PHI check, Orthanc ID)" if args.plugin else "the CLI's path"
    path += ", each image of a patient of its own" if args.patient_each else ""
    print(f"{(many - few) / (MANY - FEW) / 1e6:.2f} million instructions per CT image, {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
