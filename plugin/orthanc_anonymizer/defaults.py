"""What the CLI, the Python API and the plugin share about where they run and which secret keys the mapping.

A top-level module so that the CLI and the Python API need nothing of the Orthanc side (:mod:`.server`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SECRET_ENVIRONMENT_VARIABLE = "ANONYMIZER_SECRET"
"""Where the anonymization secret is read from (preferred to an argument: it stays out of the process list)."""
DEVELOPMENT_SECRET = b"orthanc-anonymizer-development-secret-do-not-use-for-real-data"
"""The fixed key used only when asked for by name (``--dev-secret``, ``AllowDevelopmentSecret``): test data only,
anyone can recompute its mapping."""
CHECKOUT = Path(__file__).resolve().parents[2]
"""The checkout (or installation prefix) this package runs from."""


def chosen_secret(
    given: str | bytes | None, environ: Mapping[str, str], allow_development: bool
) -> tuple[bytes, bool] | None:
    """The secret to key the mapping with and whether it is the development one: ``given``, else the environment
    variable, else (only when ``allow_development``) :data:`DEVELOPMENT_SECRET`; ``None`` when there is none."""
    if isinstance(given, bytes) and given:
        return given, False
    text = given or environ.get(SECRET_ENVIRONMENT_VARIABLE, "")
    if text:
        assert isinstance(text, str)
        return text.encode("utf-8"), False
    if allow_development:
        return DEVELOPMENT_SECRET, True
    return None
