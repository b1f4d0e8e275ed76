"""What each action code does to a value (PS3.15 Table E.1-1a), one handler per kind of value.

The engine decides *which* action applies to an attribute (the table, the options, custom rules, the IOD); this
module computes the new value: dummies valid for each VR (D), empty values (Z), date shifts and text cleaning
(C), and which alternative of a compound code (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) keeps the instance valid for its IOD.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import date, timedelta

from .profiles import Action

# Dummy values for D: non-empty and valid for the VR (length, character repertoire).
_TEXT_DUMMY = "ANONYMIZED"
DUMMY_BY_VR: dict[str, object] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": _TEXT_DUMMY,
    "LT": _TEXT_DUMMY,
    "PN": "ANONYMOUS",
    "SH": _TEXT_DUMMY,
    "ST": _TEXT_DUMMY,
    "TM": "000000",
    "UC": _TEXT_DUMMY,
    "UR": "urn:anonymized",
    "UT": _TEXT_DUMMY,
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "OW": b"\x00\x00",
    "UN": b"\x00\x00",
}
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
DATE_VRS = frozenset({"DA", "DT"})
MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "PN": 64}

# Compound codes resolved by the attribute's PS3.3 type in the instance's IOD.
_REQUIRED_WITH_VALUE = {"1", "1C"}
_REQUIRED = {"2", "2C"}


def resolve_compound(action: Action, attribute_type: str | None, iod_known: bool) -> Action:
    """The simple action that a compound ``action`` means for an attribute of ``attribute_type``.

    ``attribute_type`` is the PS3.3 type (1, 1C, 2, 2C, 3) at the attribute's path in the instance's IOD, or
    ``None`` where the IOD does not contain it (then it is optional: type 3). Conditional types count as their
    unconditional ones, because the condition cannot be judged safely here. Where the IOD itself is unknown
    (a private SOP class), the alternative that keeps any IOD valid is chosen: D over Z over X. For X/Z/U* a
    sequence that the IOD requires (type 1 or 2), or any in an unknown IOD, is kept with its UIDs replaced (U).
    """
    if not action.is_compound:
        return action
    if not iod_known:
        return {
            Action.ZD: Action.D,
            Action.XZ: Action.Z,
            Action.XD: Action.D,
            Action.XZD: Action.D,
            Action.XZU: Action.U,
        }[action]
    if attribute_type in _REQUIRED_WITH_VALUE:
        strongest = Action.D
    elif attribute_type in _REQUIRED:
        strongest = Action.Z
    else:
        strongest = Action.X
    if action is Action.ZD:
        return Action.D if strongest is Action.D else Action.Z
    if action is Action.XZ:
        return Action.X if strongest is Action.X else Action.Z
    if action is Action.XD:
        return Action.X if strongest is Action.X else Action.D
    if action is Action.XZD:
        return strongest
    # X/Z/U*: a required sequence (type 1 or 2) stays, with the instance UIDs it references replaced (they are U
    # in the table). For type 2 an empty sequence would also conform, but a segmentation or derived image would
    # lose its link to its source images, and some IODs (SEG) require items there; keyed UIDs reveal nothing.
    return Action.X if strongest is Action.X else Action.U


def dummy_value(vr: str) -> object:
    """A non-empty dummy valid for ``vr`` (action D). UIDs are handled by the engine (keyed)."""
    return DUMMY_BY_VR.get(vr, b"\x00\x00")


def empty_value(vr: str) -> object:
    """The zero-length value for ``vr`` (action Z)."""
    if vr == "SQ":
        return []
    return "" if vr in STRING_VRS else None


def shift_date(value: str, vr: str, days: int) -> str | None:
    """``value`` (DA or DT) moved ``days`` days back, keeping its precision and any time and offset part.

    Returns ``None`` when the value is not a date this function can parse.
    """
    text = value.strip()
    if not text:
        return text
    digits = len(text) if vr == "DA" else min(len(text), 8)
    head, tail = text[:digits], text[digits:]
    if digits not in (4, 6, 8) or not head.isdigit():
        return None
    year, month, day = int(head[:4]), int(head[4:6] or 1), int(head[6:8] or 1)
    try:
        shifted = date(year, month, day) - timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if shifted.year < 1:
        return None
    return shifted.strftime("%Y%m%d")[:digits] + tail


def date_variants(value: str) -> set[str]:
    """Ways a DA value ``YYYYMMDD`` is commonly written in free text."""
    if len(value) != 8 or not value.isdigit():
        return set()
    y, m, d = value[:4], value[4:6], value[6:]
    return {value, f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}", f"{d}-{m}-{y}"}


MIN_COMPONENT_LENGTH = 2
"""The shortest name component or word searched for on its own: an initial (``J``) or a one-character family
name (``王``) would destroy ordinary text; shorter components are still found inside the whole name
(``王伟``, ``J SMITH``)."""
MIN_SUFFIXED_LENGTH = 3
"""The shortest word that is also found with a suffix (``'s``, ``s``, ``es``): ``Li`` must not clean ``Lies``."""
MIN_VALUE_LENGTH = 3
"""The shortest ID, institution or other value searched for (a two-letter code is no identifier)."""

_SEPARATOR_CLASS = r"[\s_^\-.,/\u30fb]"  # and the katakana middle dot of ワン・ウェイ
_SEPARATORS = re.compile(_SEPARATOR_CLASS + "+")
_SUFFIX = r"(?:['\u2019]s|['\u2019]|es|s)?"
# Scripts written without spaces between words (CJK ideographs, kana, Hangul, full-width forms): a name in them is
# followed by a particle or honorific with no space (山田さん, 김철수님), so it is found without word boundaries.
_UNSPACED_FROM = 0x2E80

Token = tuple[str, ...]
"""An identifying value as its parts, found in text with any separators (or none) between the parts."""


def _unspaced(character: str) -> bool:
    return ord(character) >= _UNSPACED_FROM


def _name_tokens(value: str) -> set[Token]:
    """A PN value's tokens: per component group (alphabetic, ideographic, phonetic), each component long enough,
    each long word of a component, and the family, given and middle names joined in every order."""
    tokens: set[Token] = set()
    for group in value.split("="):
        components = [
            tuple(_SEPARATORS.split(part.strip(" _^-.,/"))) if part.strip() else () for part in group.split("^")
        ]
        components = [tuple(word for word in parts if word) for parts in components]
        for parts in components:
            if not parts:
                continue
            if sum(len(word) for word in parts) >= MIN_COMPONENT_LENGTH:
                tokens.add(parts)
            if len(parts) > 1:
                tokens |= {(word,) for word in parts if len(word) > MIN_SUFFIXED_LENGTH}
        names = [parts for parts in components[:3] if parts]  # family, given, middle (prefix and suffix: titles)
        for count in range(2, len(names) + 1):
            for order in itertools.permutations(names, count):
                tokens.add(tuple(word for parts in order for word in parts))
    return tokens


def identifying_tokens(vr: str, value: str) -> set[Token]:
    """The pieces of an identifying value worth searching for in free text (for C, clean)."""
    value = value.strip()
    if not value:
        return set()
    if vr == "PN":
        return _name_tokens(value)
    if vr == "DA":
        return {(variant,) for variant in date_variants(value)}
    if vr == "DT":
        return {(variant,) for variant in date_variants(value[:8])}
    if vr in ("LO", "SH", "AE", "UC", "CS") and len(value) >= MIN_VALUE_LENGTH:
        if any(character.isdigit() for character in value):
            # An ID: found with separators added, changed or dropped anywhere (12-345-678, 12345678, 12 345 678)
            characters = tuple(_SEPARATORS.sub("", value))
            return {characters} if len(characters) >= MIN_VALUE_LENGTH else set()
        return {tuple(word for word in _SEPARATORS.split(value) if word)}
    return set()


def _token_pattern(token: Token) -> str:
    # "ß" upper-cases to "SS", which a case-insensitive match does not equate with it
    body = (_SEPARATOR_CLASS + "*").join(re.escape(part).replace("ß", "(?:ß|ss)") for part in token)
    first, last = token[0][0], token[-1][-1]
    before = "" if _unspaced(first) else r"(?<![^\W_])"
    suffix = _SUFFIX if last.isalpha() and not _unspaced(last) and len("".join(token)) >= MIN_SUFFIXED_LENGTH else ""
    after = "" if _unspaced(last) else r"(?![^\W_])"
    return before + body + suffix + after


class TextCleaner:
    """Removes known identifying values (names, IDs, dates, addresses of this instance) from free text.

    Each value is found case-insensitively, in any script (the text is decoded in the instance's character sets
    by then), with any separators between its parts (spaces, ``_``, ``^``, ``-``, ``.``, ``,``, ``/``, or none),
    with a possessive or plural suffix, as a whole word in scripts written with spaces and anywhere in those
    written without (see :data:`MIN_COMPONENT_LENGTH` for what is too short to search on its own).
    """

    REPLACEMENT = "***"

    def __init__(self, tokens: Iterable[Token]) -> None:
        ordered = sorted({token for token in tokens if "".join(token).strip()}, key=lambda t: (-len("".join(t)), t))
        self._pattern = (
            re.compile("|".join(_token_pattern(token) for token in ordered), re.IGNORECASE) if ordered else None
        )

    def clean(self, text: str, vr: str) -> str:
        """``text`` with every identifying value replaced by ``***``, within the VR's maximum length."""
        if self._pattern is None or not text:
            return text
        cleaned = self._pattern.sub(self.REPLACEMENT, text)
        limit = MAX_LENGTH.get(vr)
        return cleaned[:limit] if limit else cleaned
