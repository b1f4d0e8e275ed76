"""``--project``: the CLI's copies for two projects share no UID nor pseudonym; no project is the old mapping;
a bad project name exits 2 naming ``--project``."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import SECRET, copy_good_files, read, run

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.uids import KeyedHasher

UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _identifiers(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.dcm")):
        dataset = read(path.read_bytes())
        values = {str(dataset[keyword].value) for keyword in UID_KEYWORDS if keyword in dataset}
        values |= {str(dataset.PatientID), str(dataset.PatientName)}
        found[str(path.relative_to(folder))] = values
    return found


def test_two_projects_give_copies_that_share_no_uid_or_pseudonym(tmp_path: Path) -> None:
    source = copy_good_files(tmp_path / "src")
    for name, extra in (("none", []), ("lung", ["--project", "LUNG-2026"]), ("cardio", ["--project", "CARDIO"])):
        result = run("anonymize", source, tmp_path / name, *extra)
        assert result.returncode == 0, result.stderr
    none, lung, cardio = (_identifiers(tmp_path / name) for name in ("none", "lung", "cardio"))
    assert set(none) == set(lung) == set(cardio) and none
    for relative in none:
        assert not none[relative] & lung[relative]
        assert not lung[relative] & cardio[relative]
        assert not none[relative] & cardio[relative]
    # the same project again: the same copy, byte for byte
    assert run("anonymize", source, tmp_path / "lung2", "--project", "LUNG-2026").returncode == 0
    for relative in lung:
        assert (tmp_path / "lung" / relative).read_bytes() == (tmp_path / "lung2" / relative).read_bytes()
    # without --project: what the engine writes without a project (the mapping of earlier versions)
    for relative in none:
        original = (source / relative).read_bytes()
        expected, _ = anonymize_bytes(original, AnonymizationSettings(hasher=KeyedHasher(SECRET.encode())))
        assert (tmp_path / "none" / relative).read_bytes() == expected


@pytest.mark.parametrize(
    "project", ["x" * 65, "LUNG\t2026", " LUNG"], ids=["too long", "a control character", "a leading space"]
)
def test_a_bad_project_exits_2_naming_it(project: str, tmp_path: Path) -> None:
    source = copy_good_files(tmp_path / "src")
    result = run("anonymize", source, tmp_path / "out", "--project", project)
    assert result.returncode == 2
    assert "--project" in result.stderr
    assert not (tmp_path / "out").exists()
