"""The Python API (README "Python API"): the README's example runs as written and de-identifies a real file; the
API writes what the CLI writes for the same arguments; a bad argument is named; without a secret it refuses, as the
CLI does; a copy with residual PHI is a typed failure and is not written."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from orthanc_anonymizer import Anonymizer, Failure, InstanceOutcome, InvalidArgument
from orthanc_anonymizer.cli import main as cli_main
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.verify import verify_bytes

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "python api test secret"
FAMILY = "Quintrellhaus"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the Python API section has one example"
    return str(blocks[0])


def planted_ct(path: Path) -> Path:
    source = get_testdata_file("CT_small.dcm")
    assert source is not None
    dataset = dcmread(source)
    dataset.PatientName = f"{FAMILY}^Ottoline"
    dataset.PatientID = "PID-API-0042"
    dataset.save_as(path)
    return path


def test_the_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = readme_example()
    assert len(example.strip().splitlines()) <= 6
    original = planted_ct(tmp_path / "scan.dcm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANONYMIZER_SECRET", SECRET)
    exec(compile(example, "README.md (Python API)", "exec"), {})
    written = (tmp_path / "anon.dcm").read_bytes()
    output = dcmread(tmp_path / "anon.dcm")
    before = dcmread(original)
    assert output.PatientIdentityRemoved == "YES"
    assert FAMILY.encode() not in written and b"PID-API-0042" not in written
    assert output.SOPInstanceUID != before.SOPInstanceUID and output.StudyInstanceUID != before.StudyInstanceUID
    assert verify_bytes(original.read_bytes(), written, basic_profile()).clean
    assert output.PixelData == before.PixelData


def test_the_api_writes_what_the_cli_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = planted_ct(tmp_path / "scan.dcm")
    rules = tmp_path / "rules.csv"
    rules.write_text("0008,0070;K\n", encoding="utf-8")
    monkeypatch.setenv("ANONYMIZER_SECRET", SECRET)
    arguments = {"options": ["RetainLongModifDates"], "rules": [rules], "project": "LUNG-2026"}
    outcome = Anonymizer("basic", **arguments, patient_name="TRIAL^007").anonymize_file(original, tmp_path / "api.dcm")
    assert isinstance(outcome, InstanceOutcome) and outcome.failure is None and outcome.residual_clean is True
    options = ["--option", "RetainLongModifDates", "--rules", str(rules), "--project", "LUNG-2026"]
    status = cli_main(["anonymize", str(original), str(tmp_path / "cli.dcm"), *options, "--patient-name", "TRIAL^007"])
    assert status == 0
    assert (tmp_path / "api.dcm").read_bytes() == (tmp_path / "cli.dcm").read_bytes()
    assert str(dcmread(tmp_path / "api.dcm").PatientName) == "TRIAL^007"


def test_a_dataset_is_anonymized_and_left_unchanged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dataset = dcmread(planted_ct(tmp_path / "scan.dcm"))
    before = dataset.to_json()
    anonymizer = Anonymizer(secret=SECRET)
    outcome = anonymizer.anonymize(dataset)
    copy = outcome.dataset()
    assert outcome.failure is None and copy is not None
    assert dataset.to_json() == before
    assert FAMILY not in str(copy.PatientName) and copy.PatientIdentityRemoved == "YES"
    assert anonymizer.verify(dataset, copy).clean
    assert outcome.counts and all(isinstance(count, int) for count in outcome.counts.values())


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"profile": "no-such-profile"}, "profile"),
        ({"options": ["RetainEverything"]}, "options"),
        ({"options": "RetainLongModifDates"}, "options"),
        ({"rules": ["/nonexistent/rules.csv"]}, "rules"),
        ({"project": " LUNG-2026"}, "project"),
        ({"patient_name": "A" * 500}, "patient_name"),
        ({"patient_id": "line\nbreak"}, "patient_id"),
        ({"profiles_dir": "/nonexistent/profiles"}, "profiles_dir"),
    ],
)
def test_a_bad_argument_is_named(arguments: dict[str, object], argument: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Anonymizer(secret=SECRET, **arguments)  # type: ignore[arg-type]
    assert raised.value.argument == argument
    assert str(raised.value).startswith(f"{argument}: ")


def test_without_a_secret_it_refuses_unless_the_development_key_is_asked_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Anonymizer(environ={})
    assert raised.value.argument == "secret"
    with caplog.at_level(logging.WARNING, logger="orthanc_anonymizer"):
        anonymizer = Anonymizer(environ={}, development_secret=True)
    assert anonymizer.development_secret
    assert "development key" in caplog.text
    assert not Anonymizer(environ={"ANONYMIZER_SECRET": SECRET}, development_secret=True).development_secret


def test_residual_phi_is_a_typed_failure_and_not_written(tmp_path: Path) -> None:
    original = planted_ct(tmp_path / "scan.dcm")
    dataset = dcmread(original)
    dataset.ImageComments = f"seen by {FAMILY}"
    dataset.save_as(original)
    rules = tmp_path / "keep-comments.csv"
    rules.write_text("0020,4000;K\n", encoding="utf-8")
    destination = tmp_path / "anon.dcm"
    destination.write_bytes(b"an older output")
    outcome = Anonymizer(secret=SECRET, rules=[rules]).anonymize_file(original, destination)
    assert outcome.failure is Failure.RESIDUAL_PHI and outcome.residual_clean is False
    assert "0020,4000" in outcome.residual_leaks and FAMILY not in outcome.reason
    assert not destination.exists()
    broken = tmp_path / "broken.dcm"
    shutil.copy(original, broken)
    broken.write_bytes(b"not DICOM at all")
    failure = Anonymizer(secret=SECRET).anonymize_file(broken, tmp_path / "never.dcm")
    assert failure.failure is Failure.INVALID_INPUT and failure.reason and not (tmp_path / "never.dcm").exists()
