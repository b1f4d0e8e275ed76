"""Logging without PHI.

pydicom reports odd input through :mod:`warnings`, and its messages can quote element values (a name, a date).
Those must not reach stderr (Orthanc's log, a terminal, a CI log): :func:`route_warnings_to_logging` sends every
warning to :mod:`logging` with its text reduced to the warning's category and the tag numbers it mentions.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import warnings
from types import TracebackType
from typing import TextIO

logger = logging.getLogger("orthanc_anonymizer")
_TAG = re.compile(r"\(?\b([0-9A-Fa-f]{4}),\s?([0-9A-Fa-f]{4})\b\)?")


def strip_values(message: str) -> str:
    """Keep only the tag numbers that ``message`` mentions; drop everything else (which may quote values)."""
    tags = sorted({f"({g.upper()},{e.upper()})" for g, e in _TAG.findall(message)})
    return "tags " + " ".join(tags) if tags else "no tag named"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    logger.warning(
        "%s from %s:%d (%s)", category.__name__, filename.rsplit("/", 1)[-1], lineno, strip_values(str(message))
    )


def route_warnings_to_logging() -> None:
    """Send all warnings (pydicom's included) to the ``orthanc_anonymizer`` logger, values stripped."""
    warnings.showwarning = _show_warning
    # pydicom also logs through its own logger; its messages may carry values too.
    pydicom_logger = logging.getLogger("pydicom")
    pydicom_logger.handlers.clear()
    pydicom_logger.addFilter(_StripValuesFilter())
    pydicom_logger.propagate = True


class _StripValuesFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = strip_values(record.getMessage())
        record.args = None
        return True


def exception_summary(error: BaseException, tb: TracebackType | None = None) -> str:
    """A value-free description of ``error``: its type, and its message only if it is one of ours."""
    from orthanc_anonymizer.errors import AnonymizerError

    if isinstance(error, AnonymizerError):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, OSError) and error.errno:  # "No space left on device": the reason, without the path
        return f"{type(error).__name__}: {os.strerror(error.errno)}"
    if isinstance(error, sqlite3.Error):  # SQLite's messages name no value ("database or disk is full")
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__} ({strip_values(str(error))})"
