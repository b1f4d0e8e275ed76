"""The ``orthanc-anonymizer`` command as a user runs it: the installed script on copies of pydicom's test files and
on a folder tree with a text file and a truncated DICOM file among them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from orthanc_anonymizer.audit import AuditLog
from orthanc_anonymizer.deid.profile_files import SHIPPED_DIRECTORY

CLI = Path(sys.executable).parent / "orthanc-anonymizer"
SECRET = "cli test secret"
GOOD_FILES = {
    "patient1/study1/CT_small.dcm": "CT_small.dcm",
    "patient1/study1/MR_small.dcm": "MR_small.dcm",
    "patient2/rt/rtplan.dcm": "rtplan.dcm",
    "patient2/rt/rtdose.dcm": "rtdose.dcm",
    "JPEG2000.dcm": "JPEG2000.dcm",
}
NOT_DICOM = "patient1/notes/readme.txt"
TRUNCATED = "patient2/broken/truncated.dcm"
# Values of the originals that must never be printed.
ORIGINAL_VALUES = ("CompressedSamples", "Lastname^Firstname", "ABCD1234", "id11111", "secret words of a text file")


def run(*args: str | Path, secret: str | None = SECRET, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Buffered streams, as in a user's shell: with PYTHONUNBUFFERED (this machine sets it) output the command failed
    # to flush before its fast exit (cli.run) would still arrive, and no test here would see it lost.
    environ = {key: value for key, value in os.environ.items() if key not in ("ANONYMIZER_SECRET", "PYTHONUNBUFFERED")}
    if secret is not None:
        environ["ANONYMIZER_SECRET"] = secret
    result = subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120, check=False
    )
    for value in ORIGINAL_VALUES:
        assert value not in result.stdout and value not in result.stderr
    return result


def copy_testdata(name: str, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(get_testdata_file(name), destination)
    return destination


def copy_good_files(source: Path) -> Path:
    for relative, name in GOOD_FILES.items():
        copy_testdata(name, source / relative)
    return source


@pytest.fixture
def good_tree(tmp_path: Path) -> Path:
    return copy_good_files(tmp_path / "good")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    source = copy_good_files(tmp_path / "src")
    (source / NOT_DICOM).parent.mkdir(parents=True)
    (source / NOT_DICOM).write_text("secret words of a text file\n")
    whole = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (source / TRUNCATED).parent.mkdir(parents=True)
    (source / TRUNCATED).write_bytes(whole[:1000])  # cut inside the header
    return source


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def read(data: bytes) -> Dataset:
    return dcmread(BytesIO(data))


def test_a_folder_keeps_its_layout_and_bad_files_are_named_and_skipped(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("anonymize", tree, out)
    assert result.returncode == 1, result.stderr
    assert sorted(files_under(out)) == sorted(GOOD_FILES)
    assert NOT_DICOM in result.stderr
    assert TRUNCATED in result.stderr
    for relative in GOOD_FILES:
        original = dcmread(tree / relative)
        output = dcmread(out / relative)
        assert output.PatientIdentityRemoved == "YES"
        assert output.SOPClassUID == original.SOPClassUID
        assert output.SOPInstanceUID != original.SOPInstanceUID
        assert output.StudyInstanceUID != original.StudyInstanceUID
        assert str(output.PatientName) != str(original.PatientName)
        assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID
        assert output.PatientID != original.PatientID
    # No progress bar when stderr is not a terminal.
    assert "\r" not in result.stderr and "file/s" not in result.stderr


def test_a_clean_folder_exits_0(good_tree: Path, tmp_path: Path) -> None:
    result = run("anonymize", good_tree, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(files_under(tmp_path / "out")) == sorted(GOOD_FILES)


def test_one_file_to_a_file_and_into_an_existing_folder(tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "in" / "ct.dcm")
    assert run("anonymize", source, tmp_path / "one.dcm").returncode == 0
    assert dcmread(tmp_path / "one.dcm").PatientIdentityRemoved == "YES"
    (tmp_path / "folder").mkdir()
    assert run("anonymize", source, tmp_path / "folder").returncode == 0
    assert (tmp_path / "folder" / "ct.dcm").read_bytes() == (tmp_path / "one.dcm").read_bytes()


def test_json_summary_counts_files_and_names_failures(tree: Path, tmp_path: Path) -> None:
    result = run("anonymize", tree, tmp_path / "out", "--json", "--verify")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["Files"] == len(GOOD_FILES) + 2
    assert summary["Anonymized"] == len(GOOD_FILES)
    assert summary["Failed"] == 2
    reasons = {failure["Path"]: failure["Reason"] for failure in summary["Failures"]}
    assert set(reasons) == {NOT_DICOM, TRUNCATED}
    assert "not a DICOM file" in reasons[NOT_DICOM]
    assert summary["Verify"] == {"Clean": len(GOOD_FILES), "ResidualPHI": 0}
    assert summary["Profile"]["Name"] == "basic"


def test_two_worker_processes_write_the_same_bytes_as_one(good_tree: Path, tmp_path: Path) -> None:
    assert run("anonymize", good_tree, tmp_path / "one", "--jobs", "1").returncode == 0
    assert run("anonymize", good_tree, tmp_path / "two", "--jobs", "2").returncode == 0
    one, two = files_under(tmp_path / "one"), files_under(tmp_path / "two")
    assert sorted(one) == sorted(GOOD_FILES)
    assert one == two


def test_the_same_secret_gives_the_same_uids_and_another_secret_other_ones(good_tree: Path, tmp_path: Path) -> None:
    def uids(folder: Path) -> list[tuple[str, str, str]]:
        return [
            (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            for ds in (read(data) for data in files_under(folder).values())
        ]

    run("anonymize", good_tree, tmp_path / "a")
    run("anonymize", good_tree, tmp_path / "b")
    run("anonymize", good_tree, tmp_path / "c", secret="another secret")
    assert uids(tmp_path / "a") == uids(tmp_path / "b")
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")
    assert not set(uids(tmp_path / "a")) & set(uids(tmp_path / "c"))


def test_chosen_patient_name_and_id_options_and_a_rules_file(tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    rules = tmp_path / "keep-model.csv"
    rules.write_text("# keep the scanner model\n0008,1090;K\n")
    result = run(
        "anonymize",
        source,
        tmp_path / "out.dcm",
        "--patient-name",
        "Study^Subject001",
        "--patient-id",
        "SUBJ001",
        "--option",
        "RetainLongFullDates",
        "--rules",
        rules,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    original, output = dcmread(source), dcmread(tmp_path / "out.dcm")
    assert (str(output.PatientName), output.PatientID) == ("Study^Subject001", "SUBJ001")
    assert output.StudyDate == original.StudyDate
    assert output.ManufacturerModelName == original.ManufacturerModelName
    profile = json.loads(result.stdout)["Profile"]
    assert profile["Options"] == ["RetainLongFullDates"]
    assert profile["Rules"] == ["0008,1090;K"]


def test_a_profile_file_given_by_path(tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    profile = tmp_path / "dates.json"
    profile.write_text(json.dumps({"Description": "dates kept", "Options": ["RetainLongFullDates"]}))
    result = run("anonymize", source, tmp_path / "out.dcm", "--profile", profile)
    assert result.returncode == 0, result.stderr
    assert dcmread(tmp_path / "out.dcm").StudyDate == dcmread(source).StudyDate


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--option", "RetainEverything"], "RetainEverything"),
        (["--profile", "no-such-profile"], "no-such-profile"),
        (["--frobnicate"], "--frobnicate"),
        (["--jobs", "0"], "--jobs"),
        (["--profiles-dir", "/nonexistent/profiles"], "/nonexistent/profiles"),
    ],
)
def test_bad_usage_exits_2_naming_the_bad_part(arguments: list[str], named: str, tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    result = run("anonymize", source, tmp_path / "out.dcm", *arguments)
    assert result.returncode == 2
    assert named in result.stderr
    assert not (tmp_path / "out.dcm").exists()


def test_a_missing_source_exits_2(tmp_path: Path) -> None:
    result = run("anonymize", tmp_path / "missing", tmp_path / "out")
    assert result.returncode == 2
    assert str(tmp_path / "missing") in result.stderr


def test_a_broken_profile_file_exits_2_naming_file_line_and_value(tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    broken = tmp_path / "broken.csv"
    broken.write_text("0010,0010;Z\n0010,0020;Q\n")
    for option in ("--profile", "--rules"):
        result = run("anonymize", source, tmp_path / "out.dcm", option, broken)
        assert result.returncode == 2
        assert "broken.csv" in result.stderr and "line 2" in result.stderr and "'Q'" in result.stderr


def test_without_a_secret_it_refuses_unless_told_to_use_the_development_key(tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    refused = run("anonymize", source, tmp_path / "out.dcm", secret=None)
    assert refused.returncode == 2
    assert "ANONYMIZER_SECRET" in refused.stderr
    assert not (tmp_path / "out.dcm").exists()
    development = run("anonymize", source, tmp_path / "out.dcm", "--dev-secret", secret=None)
    assert development.returncode == 0
    assert "development" in development.stderr
    given = run("anonymize", source, tmp_path / "given.dcm", "--secret", SECRET, secret=None)
    from_environment = run("anonymize", source, tmp_path / "environment.dcm")
    assert (tmp_path / "given.dcm").read_bytes() == (tmp_path / "environment.dcm").read_bytes()
    assert given.returncode == from_environment.returncode == 0


def test_verify_fails_a_file_whose_output_still_carries_the_patient_name(tmp_path: Path) -> None:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Vanderberg^Jonathan"
    ds.ConvolutionKernel = "VANDERBERG"  # an attribute the Basic profile keeps
    source = tmp_path / "src"
    source.mkdir()
    ds.save_as(source / "leaky.dcm", enforce_file_format=True)
    copy_testdata("MR_small.dcm", source / "fine.dcm")
    result = run("anonymize", source, tmp_path / "out", "--verify", "--json")
    assert result.returncode == 1
    assert "Vanderberg" not in result.stderr + result.stdout
    assert "leaky.dcm" in result.stderr and "0018,1210" in result.stderr and "0010,0010" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["Verify"] == {"Clean": 1, "ResidualPHI": 1}
    (failure,) = summary["Failures"]
    assert failure["Path"] == "leaky.dcm"
    assert failure["Leaks"] == [{"Path": "0018,1210", "Tag": "0018,1210", "Source": "0010,0010", "Kind": "name"}]
    # The leaky output is kept out of DST; the clean one is written.
    assert sorted(files_under(tmp_path / "out")) == ["fine.dcm"]
    # Without --verify the file is written and the run succeeds.
    assert run("anonymize", source, tmp_path / "unverified").returncode == 0


def test_profiles_lists_basic_and_the_profiles_directory(tmp_path: Path) -> None:
    directory = tmp_path / "profiles"
    directory.mkdir()
    (directory / "site.json").write_text(
        json.dumps({"Description": "Our site", "Options": ["RetainDeviceIdent", "CleanDesc"]})
    )
    (directory / "extra.csv").write_text("0008,1090;K\n")
    result = run("profiles", "--profiles-dir", directory, "--json", secret=None)
    assert result.returncode == 0, result.stderr
    listed = {entry["Name"]: entry for entry in json.loads(result.stdout)}
    assert list(listed) == ["basic", "extra", "site"]  # the folder's own, never the shipped ones beside them
    assert listed["site"]["Description"] == "Our site"
    assert listed["site"]["Options"] == ["RetainDeviceIdent", "CleanDesc"]
    assert listed["basic"]["Options"] == []
    text = run("profiles", "--profiles-dir", directory, secret=None)
    assert text.returncode == 0
    assert "site" in text.stdout and "Our site" in text.stdout and "CleanDesc" in text.stdout
    # Nor can a run choose a shipped profile the folder does not hold.
    source = copy_testdata("CT_small.dcm", tmp_path / "in")
    refused = run(
        "anonymize", source, tmp_path / "out", "--profiles-dir", directory, "--profile", "research-longitudinal"
    )
    assert refused.returncode == 2
    assert "unknown profile 'research-longitudinal'; known profiles: basic, extra, site" in refused.stderr
    assert not (tmp_path / "out").exists()
    assert run("anonymize", source, tmp_path / "out", "--profile", "research-longitudinal").returncode == 0


def test_profiles_without_a_directory_option_lists_the_shipped_ones() -> None:
    shipped = SHIPPED_DIRECTORY
    result = run("profiles", "--json", secret=None)
    assert result.returncode == 0, result.stderr
    names = [entry["Name"] for entry in json.loads(result.stdout)]
    expected = sorted(path.stem for path in shipped.iterdir() if path.suffix in (".json", ".xml", ".csv"))
    assert names == ["basic", *expected]


def test_audit_verify_reports_an_intact_and_a_tampered_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for number in range(3):
        log.append({"Action": "anonymize", "Instances": number})
    intact = run("audit-verify", path, secret=None)
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout) == {"Valid": True, "Records": 3, "BrokenAt": None}
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"Instances":1', '"Instances":7')
    path.write_text("\n".join(lines) + "\n")
    tampered = run("audit-verify", path, secret=None)
    assert tampered.returncode == 1
    assert json.loads(tampered.stdout)["BrokenAt"] == 2
    assert run("audit-verify", tmp_path / "missing.jsonl", secret=None).returncode == 2


def test_a_destination_inside_the_source_is_not_read_again(good_tree: Path) -> None:
    inside = good_tree / "anonymized"
    assert run("anonymize", good_tree, inside).returncode == 0
    assert sorted(files_under(inside)) == sorted(GOOD_FILES)
    again = run("anonymize", good_tree, inside, "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["Files"] == len(GOOD_FILES)
    assert sorted(files_under(inside)) == sorted(GOOD_FILES)


def test_the_source_itself_as_destination_is_refused(good_tree: Path) -> None:
    before = files_under(good_tree)
    assert run("anonymize", good_tree, good_tree).returncode == 2
    single = good_tree / "JPEG2000.dcm"
    assert run("anonymize", single, single).returncode == 2
    assert files_under(good_tree) == before


def test_one_file_into_a_new_folder_named_with_a_trailing_slash(tmp_path: Path) -> None:
    source = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    assert run("anonymize", source, f"{tmp_path / 'new'}/").returncode == 0
    assert dcmread(tmp_path / "new" / "ct.dcm").PatientIdentityRemoved == "YES"


def test_a_file_cut_inside_its_pixel_data_is_reported_not_written(tmp_path: Path) -> None:
    whole = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "cut.dcm").write_bytes(whole[:-1000])
    copy_testdata("MR_small.dcm", tmp_path / "src" / "fine.dcm")
    result = run("anonymize", tmp_path / "src", tmp_path / "out")
    assert result.returncode == 1
    assert "cut.dcm" in result.stderr
    assert sorted(files_under(tmp_path / "out")) == ["fine.dcm"]


@pytest.mark.parametrize("options", [[], ["CleanPixelData"]], ids=["pixels-untouched", "CleanPixelData"])
def test_the_cli_writes_what_the_engine_writes_in_process(good_tree: Path, tmp_path: Path, options: list[str]) -> None:
    # Without CleanPixelData the CLI loads pydicom without numpy, Pillow and requests (start-up time): the bytes
    # must be the same as the engine's with everything loaded, here in the test process.
    from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
    from orthanc_anonymizer.deid.profiles import basic_profile
    from orthanc_anonymizer.deid.uids import KeyedHasher

    out = tmp_path / "out"
    result = run(
        "anonymize", good_tree, out, "--jobs", "2", *(arg for option in options for arg in ("--option", option))
    )
    assert result.returncode == 0, result.stderr
    settings = AnonymizationSettings(profile=basic_profile(options), hasher=KeyedHasher(SECRET.encode()))
    for relative in GOOD_FILES:
        expected, _ = anonymize_bytes((good_tree / relative).read_bytes(), settings)
        assert (out / relative).read_bytes() == expected, relative


@pytest.mark.parametrize(
    ("arguments", "pixels"),
    [([], False), (["--project", "study-42"], False), (["--option", "CleanPixelData"], True)],
    ids=["default", "project", "CleanPixelData"],
)
def test_pixels_left_alone_load_no_pixel_libraries(
    good_tree: Path, tmp_path: Path, arguments: list[str], pixels: bool
) -> None:
    # Start-up time: numpy, Pillow and requests cost about half of the CLI's start-up, and a run that never decodes
    # pixel data has no use for them (every argument's check runs before pydicom is loaded, or loads it this way).
    # Nor for pylibjpeg's codec plugins, whose failed import (no numpy) would still leave a module of theirs.
    script = (
        "import sys\n"
        "from orthanc_anonymizer.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'numpy', 'PIL', 'requests', 'openjpeg', 'libjpeg', 'rle'}))\n"
        "sys.exit(status)\n"
    )
    environ = {**os.environ, "ANONYMIZER_SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", script, "anonymize", str(good_tree), str(tmp_path / "out"), *arguments],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().replace("'", '"'))
    assert ("numpy" in loaded) if pixels else loaded == []
