"""The reverse index of links (SQLite, one Orthanc): both directions, idempotent writes, several at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from orthanc_anonymizer.errors import LinkStoreError
from orthanc_anonymizer.server.links import LinkIndex


def test_a_link_is_found_both_ways_and_recorded_once(tmp_path: Path) -> None:
    index = LinkIndex(tmp_path / "links.sqlite")
    index.add("Study", "original", "copy-1")
    index.add("Study", "original", "copy-1")
    index.add("Study", "original", "copy-2")
    assert index.copies("Study", "original") == ["copy-1", "copy-2"]
    assert index.source("Study", "copy-2") == "original"
    assert index.source("Series", "copy-2") is None  # levels are apart
    assert index.copies("Study", "copy-1") == []


def test_add_many_writes_every_row_and_survives_a_reopening(tmp_path: Path) -> None:
    index = LinkIndex(tmp_path / "links.sqlite")
    rows = [("Instance", f"original-{n}", f"copy-{n}") for n in range(50)]
    index.add_many(rows)
    index.add_many(rows[:10])  # replayed: nothing doubled
    index.add_many([])
    index.close()
    reopened = LinkIndex(tmp_path / "links.sqlite")
    assert [reopened.copies("Instance", f"original-{n}") for n in range(50)] == [[f"copy-{n}"] for n in range(50)]
    assert reopened.source("Instance", "copy-49") == "original-49"


def test_an_index_that_cannot_be_written_or_read_says_so_as_a_link_store_error(tmp_path: Path) -> None:
    index = LinkIndex(tmp_path / "links.sqlite")
    index.add("Study", "original", "copy")
    index._connection.execute("PRAGMA query_only = ON")  # as a read-only file would
    with pytest.raises(LinkStoreError, match=r"links index \(links.sqlite\) cannot be written"):
        index.add("Study", "original", "copy-2")
    assert index.copies("Study", "original") == ["copy"]  # the failed transaction left nothing half-done
    (tmp_path / "links.sqlite").unlink()
    (tmp_path / "links.sqlite-wal").unlink(missing_ok=True)
    index._connection.close()
    with pytest.raises(LinkStoreError, match="cannot be read"):
        index.source("Study", "copy")
