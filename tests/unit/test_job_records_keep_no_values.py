"""A dry run with IncludeValues answers original values; its job record on disk never holds them."""

from __future__ import annotations

import json
from pathlib import Path

from orthanc_anonymizer.server.job_records import JobStore, without_values


def test_values_stay_out_of_the_record_on_disk(tmp_path: Path) -> None:
    change = {"Tag": "0010,0010", "Keyword": "PatientName", "Action": "Z", "Original": "Secret^Person", "New": ""}
    record = {
        "ID": "8d0c7a52-4c0e-4d57-9d6e-7a5a3c1b2f10",
        "State": "Success",
        "Results": [{"Source": "a", "Changes": [change]}, {"Source": "b", "Error": "unknown resource"}],
    }
    store = JobStore(tmp_path)
    store.save(record)

    text = (tmp_path / f"{record['ID']}.json").read_text()
    assert "Secret" not in text
    loaded = store.load(str(record["ID"]))
    assert loaded is not None and loaded["ValuesOmitted"] is True
    assert loaded["Results"][0]["Changes"] == [{"Tag": "0010,0010", "Keyword": "PatientName", "Action": "Z"}]
    assert loaded["Results"][1] == record["Results"][1]
    assert record["Results"][0]["Changes"][0]["Original"] == "Secret^Person"  # the live record keeps them


def test_records_without_values_are_written_as_they_are(tmp_path: Path) -> None:
    record = {"ID": "x", "Results": [{"Source": "a", "Changes": [{"Tag": "0010,0010"}]}, {"Source": "b"}]}
    assert without_values(record) == record
    assert json.dumps(without_values({"ID": "y"})) == '{"ID": "y"}'
