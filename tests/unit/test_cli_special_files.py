"""The CLI never waits on what is not a regular file: a real FIFO (and a socket, a device, a dangling symlink, a
symlink loop, a symlink to a folder) in SRC is named on stderr as skipped while every regular file is anonymized;
given as SRC itself it is bad usage (exit 2), named. A FIFO opened by mistake would block until a writer comes, so
each run has a timeout: a hang fails the test instead of hanging it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

CLI = Path(sys.executable).parent / "orthanc-anonymizer"
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "ANONYMIZER_SECRET": "special files test secret"}
    # 60 s: a hang on a FIFO would never end; the command itself takes a few seconds.
    return subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[str]]:
    """SRC with two DICOM files and one entry of each kind that is not a regular file; the names of the latter."""
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    shutil.copyfile(get_testdata_file("CT_small.dcm"), source / "CT_small.dcm")
    shutil.copyfile(get_testdata_file("rtplan.dcm"), source / "sub" / "rtplan.dcm")
    (source / "link-to-file.dcm").symlink_to(source / "CT_small.dcm")  # a symlink to a regular file: anonymized
    os.mkfifo(source / "pipe.dcm")
    os.mkfifo(source / "sub" / "nested-pipe")
    (source / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    (source / "loop-a").symlink_to(source / "loop-b")
    (source / "loop-b").symlink_to(source / "loop-a")
    (source / "link-to-pipe").symlink_to(source / "pipe.dcm")
    (source / "link-to-folder").symlink_to(source / "sub")
    (source / "null-device").symlink_to("/dev/null")
    special = ["pipe.dcm", "sub/nested-pipe", "dangling.dcm", "loop-a", "loop-b", "link-to-pipe", "link-to-folder"]
    special.append("null-device")
    # A socket path is limited to ~100 bytes: bound from inside the folder.
    here = os.getcwd()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(source)
        listener.bind("socket.dcm")
    finally:
        os.chdir(here)
        listener.close()
    special.append("socket.dcm")
    return source, special


def test_entries_that_are_not_regular_files_are_skipped_and_named(tree: tuple[Path, list[str]], tmp_path) -> None:
    source, special = tree
    destination = tmp_path / "out"
    result = run("anonymize", source, destination, "--json", "--verify")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["Anonymized"] == summary["Files"] == 3
    assert sorted(entry["Path"] for entry in summary["Skipped"]) == sorted(special)
    for name in special:
        assert f"{name}: skipped: not a regular file" in result.stderr
    kinds = {entry["Path"]: entry["Kind"] for entry in summary["Skipped"]}
    assert kinds["pipe.dcm"] == "a FIFO"
    assert kinds["socket.dcm"] == "a socket"
    assert kinds["dangling.dcm"] == "a dangling symlink"
    assert kinds["loop-a"] == "a symlink loop"
    assert kinds["link-to-pipe"] == "a symlink to a FIFO"
    assert kinds["link-to-folder"] == "a symlink to a folder"
    assert kinds["null-device"] == "a symlink to a character device"
    written = sorted(str(path.relative_to(destination)) for path in destination.rglob("*") if path.is_file())
    assert written == ["CT_small.dcm", "link-to-file.dcm", "sub/rtplan.dcm"]


@pytest.mark.parametrize("kind", ["fifo", "dangling", "loop", "device"])
def test_src_that_is_not_a_regular_file_or_folder_is_bad_usage(kind: str, tmp_path: Path) -> None:
    source = tmp_path / "src.dcm"
    if kind == "fifo":
        os.mkfifo(source)
    elif kind == "dangling":
        source.symlink_to(tmp_path / "nowhere.dcm")
    elif kind == "loop":
        source.symlink_to(source)
    else:
        source = Path("/dev/null")
    result = run("anonymize", source, tmp_path / "out.dcm")
    assert result.returncode == 2
    assert str(source) in result.stderr
    assert "neither a regular file nor a folder" in result.stderr
    assert not (tmp_path / "out.dcm").exists()


def test_a_file_that_becomes_a_fifo_after_listing_is_not_waited_on(tmp_path: Path) -> None:
    """The race: listed as a regular file, replaced by a FIFO before it is read."""
    from orthanc_anonymizer.cli import FileTask, anonymize_one
    from orthanc_anonymizer.deid.engine import AnonymizationSettings
    from orthanc_anonymizer.deid.uids import KeyedHasher

    fifo = tmp_path / "became-a-pipe.dcm"
    os.mkfifo(fifo)
    task = FileTask(fifo, tmp_path / "out.dcm", "became-a-pipe.dcm")
    result = anonymize_one(task, AnonymizationSettings(hasher=KeyedHasher(b"k")), verify=False)
    assert not result.ok
    assert result.reason == "skipped: not a regular file (a FIFO)"
    assert not (tmp_path / "out.dcm").exists()
