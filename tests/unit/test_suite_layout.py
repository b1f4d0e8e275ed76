"""The suite itself: pytest imports test files by their basename (rootdir-relative "prepend" import mode), so two test
files of one name in tests/unit and tests/integration stop `make test` at collection on a clean clone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_has_a_basename_of_its_own() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)
    assert [name for name, count in names.items() if count > 1 and name != "conftest.py"] == []
