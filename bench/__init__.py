"""Benchmarks (``make bench``), never part of ``make test``: ratios against baselines measured in the same run.

The integration tests' modules (the Orthanc server class, the study generator) are imported from
``tests/integration``, put on the path here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
