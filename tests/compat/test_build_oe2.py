"""``tools/compat/build-oe2.sh``, Orthanc Explorer 2 for the browser test on forky: it refuses a source that is not
OE2 1.14.1's, takes a plugin from this machine's cache without building, and leaves an up-to-date one alone. Run on
a copy of the scripts in a scratch checkout with a scratch cache, so nothing of the real ``.compat/`` is touched and
nothing is built (the real build: ``make oe2``, tools/compat/README.md)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
SCRIPT = CHECKOUT / "tools" / "compat" / "build-oe2.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="build-oe2.sh runs as root (like the roots' scripts)")


def scratch_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    shutil.copytree(CHECKOUT / "tools" / "compat", checkout / "tools" / "compat")
    shutil.copy(CHECKOUT / "Makefile", checkout / "Makefile")
    return checkout


def run(checkout: Path, cache: Path, source: Path) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COMPAT_CACHE": str(cache), "OE2_SOURCE": str(source)}
    return subprocess.run(
        ["bash", str(checkout / "tools" / "compat" / "build-oe2.sh")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cache_key(script: Path) -> str:
    """The key the script names its cached tarball by: its source's sha256 and its own text."""
    text = script.read_text()
    sha = re.search(r"^OE2_SHA256=([0-9a-f]{64})$", text, re.MULTILINE)
    assert sha, "the script pins the source's sha256"
    return hashlib.sha256(f"{sha.group(1)}\n{text.rstrip(chr(10))}\n".encode()).hexdigest()[:16]


def test_a_source_that_is_not_oe2_1_14_1_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    checkout = scratch_checkout(tmp_path)
    fake = tmp_path / "orthanc-explorer-2-1.14.1.tar.gz"
    fake.write_bytes(b"not the release")
    result = run(checkout, tmp_path / "cache", fake)
    assert result.returncode != 0
    assert f"{fake} is not the OE2 1.14.1 source (sha256 differs)" in result.stderr
    assert not (checkout / ".compat" / "oe2-build").exists(), "no build root was made"
    assert not (checkout / ".compat" / "oe2" / "libOrthancExplorer2.so").exists()

    missing = run(checkout, tmp_path / "cache", tmp_path / "nowhere.tar.gz")
    assert missing.returncode != 0 and "no " + str(tmp_path / "nowhere.tar.gz") in missing.stderr


def test_the_plugin_comes_from_the_machine_cache_then_stays_up_to_date(tmp_path: Path) -> None:
    checkout = scratch_checkout(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    plugin = tmp_path / "libOrthancExplorer2.so"
    plugin.write_bytes(b"\x7fELF a cached build")
    tarball = cache / f"oe2-1.14.1-{cache_key(checkout / 'tools' / 'compat' / 'build-oe2.sh')}.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(plugin, arcname="libOrthancExplorer2.so")
    compressed = tarball.with_suffix(".tar.zst")
    subprocess.run(["zstd", "-q", "--rm", str(tarball), "-o", str(compressed)], check=True)
    absent_source = tmp_path / "absent.tar.gz"  # never read on this path

    first = run(checkout, cache, absent_source)
    assert first.returncode == 0, first.stderr
    assert "unpacking cached Orthanc Explorer 2" in first.stderr
    built = checkout / ".compat" / "oe2" / "libOrthancExplorer2.so"
    assert built.read_bytes() == plugin.read_bytes()

    second = run(checkout, cache, absent_source)
    assert second.returncode == 0 and "is up to date" in second.stderr
    assert not (checkout / ".compat" / "oe2-build").exists(), "nothing was built"
