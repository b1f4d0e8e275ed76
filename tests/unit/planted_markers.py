"""Markers planted in a file, and the search for them in an output in every encoding a value could take there."""

from __future__ import annotations

import base64


def marker_forms(marker: str) -> dict[str, bytes]:
    """``marker`` as it would appear in bytes: in every character encoding a DICOM file (or a careless writer) could
    use, and as base64 (from each of the three offsets at which it could start in a longer text) and hex."""
    raw = marker.encode("utf-8")
    forms = {
        "ascii/utf-8": raw,
        "latin-1": marker.encode("latin-1", "replace"),
        "utf-16-le": marker.encode("utf-16-le"),
        "utf-16-be": marker.encode("utf-16-be"),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    for offset in range(3):
        # Inside a longer base64 text the marker's bytes start at any offset modulo 3; the middle stays stable.
        encoded = base64.b64encode(b"\x00" * offset + raw)[4 if offset else 0 :]
        forms[f"base64+{offset}"] = encoded[: max(8, len(encoded) - 4)]
    return forms


def forms_found(data: bytes | memoryview, marker: str) -> list[str]:
    """The names of the forms of ``marker`` that occur in ``data`` (case-insensitively for the text forms)."""
    data = bytes(data)
    lowered = data.lower()
    found = []
    for name, form in marker_forms(marker).items():
        haystack = data if name.startswith("base64") else lowered
        needle = form if name.startswith("base64") else form.lower()
        if needle in haystack:
            found.append(name)
    return found
