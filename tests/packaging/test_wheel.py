"""The installable package: ``python -m build`` makes an sdist and a wheel from the checkout, and the wheel alone, in
a fresh venv outside the checkout, gives an ``orthanc-anonymizer`` command that anonymizes with the shipped named
profiles and redaction rules.

The build runs on a copy of what it reads (``pyproject.toml``, ``README.md``, ``plugin/``), so that it writes no
``.egg-info`` into the checkout. The build's own setuptools and the wheel's dependencies come from the package index
or pip's cache, as ``make venv`` gets them; without either the test fails saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

pytestmark = pytest.mark.packaging

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGE = CHECKOUT / "plugin" / "orthanc_anonymizer"
SECRET = "packaging test secret"
US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
NETWORK_HINT = (
    "it needs the package index (or pip's cache or find-links holding the pinned versions): is this machine offline?"
)


def run(command: Sequence[str | Path], what: str, *, cwd: Path, timeout: float = 600) -> str:
    """``command``'s standard output; a test failure naming ``what`` and the end of its output otherwise."""
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    environment["ANONYMIZER_SECRET"] = SECRET
    try:
        result = subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish in {timeout:.0f} s; {NETWORK_HINT}")
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        hint = f"\n{NETWORK_HINT}" if "pip" in what or "build" in what else ""
        pytest.fail(f"{what} failed (exit {result.returncode}):\n{output}{hint}")
    return result.stdout


def package_files() -> set[str]:
    """Every file of the package in the checkout, as the wheel names it (``orthanc_anonymizer/...``)."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist that ``python -m build`` makes from the checkout."""
    try:
        import build  # noqa: F401  (the dev extra's; only its presence is checked here)
    except ImportError:
        pytest.fail("python -m build needs the package build (the dev extra): run make venv")
    folder = tmp_path_factory.mktemp("build")
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    shutil.copytree(
        CHECKOUT / "plugin", source / "plugin", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    dist = folder / "dist"
    run([sys.executable, "-m", "build", "--outdir", dist, source], "python -m build", cwd=folder)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(path.name for path in dist.iterdir())
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def installed(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed, its dependencies from the package index; its ``bin`` folder."""
    wheel, _ = built
    venv = tmp_path_factory.mktemp("venv") / "venv"
    elsewhere = venv.parent
    run([sys.executable, "-m", "venv", venv], "python -m venv", cwd=elsewhere)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", wheel]
    run(pip, "pip install of the wheel", cwd=elsewhere)
    return venv / "bin"


def test_the_wheel_and_the_sdist_carry_every_file_of_the_package(built: tuple[Path, Path]) -> None:
    wheel, sdist = built
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {name for name in archive.namelist() if name.startswith("orthanc_anonymizer/")}
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")))
    # What the issue names, spelt out: the standard's tables, the explorer files, py.typed and the profiles.
    named = {
        "orthanc_anonymizer/py.typed",
        "orthanc_anonymizer/deid/standard/table_e1_1.json",
        "orthanc_anonymizer/deid/standard/safe_private.json",
        "orthanc_anonymizer/deid/standard/attribute_types.json",
        "orthanc_anonymizer/deid/standard/action_codes.json",
        "orthanc_anonymizer/deid/standard/README.md",
        "orthanc_anonymizer/server/explorer/explorer.js",
        "orthanc_anonymizer/server/explorer/anonymize.html",
        "orthanc_anonymizer/profiles/research-longitudinal.json",
        "orthanc_anonymizer/profiles/teaching-file.json",
        "orthanc_anonymizer/profiles/ai-training.json",
        "orthanc_anonymizer/profiles/dose-monitoring.xml",
        "orthanc_anonymizer/profiles/example-site-rules.csv",
        "orthanc_anonymizer/profiles/pixel-redaction/starter.json",
    }
    assert named <= in_wheel, sorted(named - in_wheel)
    # And every other file of the package folder: a new data file left out of package-data shows here.
    assert in_wheel == package_files(), {"missing": sorted(package_files() - in_wheel)}
    assert b"orthanc-anonymizer = orthanc_anonymizer.cli:run" in entry_points
    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0] + "/plugin/"
        in_sdist = {
            name[len(prefix) :] for name in archive.getnames() if name.startswith(prefix + "orthanc_anonymizer/")
        }
    assert package_files() <= in_sdist, sorted(package_files() - in_sdist)


def test_the_installed_command_anonymizes_with_a_shipped_profile_and_redaction_rules(
    installed: Path, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"  # no checkout on the way: not the cwd, not on sys.path
    source = work / "in"
    source.mkdir(parents=True)
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    original.save_as(source / "ct.dcm")
    # The same image as an ultrasound: the shipped starter rule us-top-banner blacks out its top 8 %.
    ultrasound = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ultrasound.Modality = "US"
    ultrasound.SOPClassUID = ultrasound.file_meta.MediaStorageSOPClassUID = US_IMAGE_STORAGE
    ultrasound.save_as(source / "us.dcm")
    band = round(0.08 * ultrasound.Rows)
    darkest = ultrasound.pixel_array.min()  # what signed MONOCHROME2 is blacked out with
    assert (ultrasound.pixel_array[:band] != darkest).any()

    where = run(
        [installed / "python", "-c", "import orthanc_anonymizer; print(orthanc_anonymizer.__file__)"],
        "import of the installed package",
        cwd=work,
    )
    assert Path(where.strip()).is_relative_to(installed.parent), where
    assert not Path(where.strip()).is_relative_to(CHECKOUT), where

    listed = json.loads(
        run([installed / "orthanc-anonymizer", "profiles", "--json"], "orthanc-anonymizer profiles", cwd=work)
    )
    assert {"basic", "research-longitudinal", "teaching-file", "ai-training", "dose-monitoring"} <= {
        entry["Name"] for entry in listed
    }

    command = [
        installed / "orthanc-anonymizer",
        "anonymize",
        "in",
        "out",
        "--profile",
        "research-longitudinal",
        "--json",
    ]
    summary = json.loads(run(command, "orthanc-anonymizer anonymize", cwd=work))
    assert summary["Anonymized"] == 2 and summary["Failed"] == 0, summary
    assert summary["Profile"]["Name"] == "research-longitudinal"

    output = pydicom.dcmread(work / "out" / "ct.dcm")
    assert str(output.PatientName) not in ("", str(original.PatientName))
    assert output.PatientID not in ("", original.PatientID)
    assert output.SOPInstanceUID != original.SOPInstanceUID
    assert output.PatientIdentityRemoved == "YES"
    assert "research-longitudinal" in str(output.DeidentificationMethod)
    # What basic would not do: research-longitudinal keeps the patient's sex and shifts the dates.
    assert output.PatientSex == original.PatientSex
    assert output.StudyDate not in ("", original.StudyDate)

    redacted = pydicom.dcmread(work / "out" / "us.dcm")
    assert str(redacted.PatientName) != str(ultrasound.PatientName)
    assert (redacted.pixel_array[:band] == darkest).all()
    assert (redacted.pixel_array[band:] != darkest).any()  # the rule's band, not the whole image (OCR may add boxes)


def test_the_metadata_a_build_or_an_editable_install_writes_into_plugin_is_never_committed() -> None:
    git = shutil.which("git")
    if git is None or not (CHECKOUT / ".git").exists():
        pytest.skip("not a git checkout")
    egg_info = "plugin/orthanc_anonymizer.egg-info/PKG-INFO"
    ignored = subprocess.run([git, "check-ignore", "-q", "--no-index", egg_info], cwd=CHECKOUT, check=False)
    assert ignored.returncode == 0, f"{egg_info} is not in .gitignore"
    tracked = subprocess.run([git, "ls-files"], cwd=CHECKOUT, capture_output=True, text=True, check=True).stdout
    assert not [name for name in tracked.splitlines() if ".egg-info/" in name]
