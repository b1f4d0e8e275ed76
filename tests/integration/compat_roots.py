"""The Debian roots of ``tools/compat/`` as the tests see them: where each is, how a command runs in it, and what it
holds (Orthanc, orthanc-python, PostgreSQL index plugin and Python versions), for the harness tests
(``tests/compat/``) and the production configuration's test.

``make test-compat-<suite>`` sets ``COMPAT_SUITE``: the tests of the roots then run for that root only (each root's
pass tests its own harness once); without it they run for every root that is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
COMPAT = CHECKOUT / "tools" / "compat"


@dataclass(frozen=True)
class CompatRoot:
    """One root: its suite and the versions Debian ships in it."""

    suite: str
    python: str
    orthanc: str
    orthanc_python: str
    postgresql_index: str

    @property
    def root(self) -> Path:
        """``COMPAT_ROOT`` overrides it, as it does in the scripts, for the suite ``COMPAT_SUITE`` names."""
        if os.environ.get("COMPAT_SUITE", "trixie") == self.suite and os.environ.get("COMPAT_ROOT"):
            return Path(os.environ["COMPAT_ROOT"])
        return CHECKOUT / ".compat" / self.suite

    @property
    def venv(self) -> Path:
        if os.environ.get("COMPAT_SUITE", "trixie") == self.suite and os.environ.get("COMPAT_VENV"):
            return Path(os.environ["COMPAT_VENV"])
        return CHECKOUT / ".compat" / f"venv-{self.suite}"

    @property
    def run(self) -> Path:
        """``run-in-<suite>.sh``: a command inside the root, the checkout at its path, the root's venv as .venv."""
        return COMPAT / f"run-in-{self.suite}.sh"

    @property
    def site_packages(self) -> Path:
        """The venv's packages as a command inside the root sees them (the venv is mounted at <checkout>/.venv)."""
        return CHECKOUT / ".venv" / "lib" / f"python{self.python}" / "site-packages"

    def built(self) -> bool:
        return (self.root / ".compat-root-key").is_file() and (self.venv / ".compat-venv-key").is_file()

    def skip_unless_built(self) -> None:
        if os.geteuid() != 0 or not self.built():
            pytest.skip(
                f"no {self.suite} root and venv at {self.root} and {self.venv} "
                f"(make compat-venv-{self.suite}), or not root"
            )


ROOTS = {
    "trixie": CompatRoot("trixie", python="3.13", orthanc="1.12.", orthanc_python="5.0", postgresql_index="5.0"),
    "forky": CompatRoot("forky", python="3.14", orthanc="1.13.", orthanc_python="7.1", postgresql_index="5.0"),
}


def tested_roots() -> list[CompatRoot]:
    """The roots this run tests: the one ``COMPAT_SUITE`` names, else all of them."""
    suite = os.environ.get("COMPAT_SUITE")
    if suite is None:
        return list(ROOTS.values())
    if suite not in ROOTS:
        raise ValueError(f"COMPAT_SUITE={suite!r} is none of {sorted(ROOTS)}")
    return [ROOTS[suite]]
