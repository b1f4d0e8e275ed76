"""What each action code does to a value (PS3.15 Table E.1-1a), one handler per kind of value.

The engine decides *which* action applies to an attribute (the table, the options, custom rules, the IOD); this
module computes the new value: dummies valid for each VR (D), empty values (Z), date shifts and text cleaning
(C), and which alternative of a compound code (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) keeps the instance valid for its IOD.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property, lru_cache
from typing import Literal

from orthanc_anonymizer.deid.profiles import Action
from orthanc_anonymizer.deid.pydicom_private import data_dictionary_names

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
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
"""Control characters no text VR allows (TAB, LF, FF, CR and the ESC of ISO 2022 are allowed): dropped from cleaned
text, and ignored by the residual check, so that one inside a word does not hide it."""
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


MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_WORD = (
    r"(?P<{0}>"
    + "|".join(
        rf"{month[:3]}(?:{month[3:]})?\.?" if month != "september" else r"sep(?:t|tember)?\.?" for month in MONTHS
    )
    + ")"
)
# Dates as they are written in free text; the group names say which part each number is. Years of 4 digits only
# (a 2-digit year cannot be told from a day or a month), between 1800 and 2199.
_YEAR = r"(?P<{0}>1[89]\d\d|2[01]\d\d)"
_DAY = r"(?P<{0}>0?[1-9]|[12]\d|3[01])"
_MONTH_NUMBER = r"(?P<{0}>0?[1-9]|1[0-2])"
_DATE_FORMS = (
    # ISO 8601 and its slash variant: year first is never ambiguous
    ("iso", _YEAR.format("y1") + r"(?P<sep1>[-/])" + _MONTH_NUMBER.format("m1") + r"(?P=sep1)" + _DAY.format("d1")),
    # DICOM DA
    ("da", r"(?P<y2>1[89]\d\d|2[01]\d\d)(?P<m2>0[1-9]|1[0-2])(?P<d2>0[1-9]|[12]\d|3[01])"),
    # dd.mm.yyyy: the dotted form is day first wherever it is used
    ("dotted", _DAY.format("d3") + r"\." + _MONTH_NUMBER.format("m3") + r"\." + _YEAR.format("y3")),
    # dd/mm/yyyy or mm/dd/yyyy (and with dashes): which one is judged per value (see find_written_dates)
    ("numeric", r"(?P<a4>\d{1,2})(?P<sep4>[/-])(?P<b4>\d{1,2})(?P=sep4)" + _YEAR.format("y4")),
    # 11 March 2024, 11 Mar. 2024, 11th of March 2024
    (
        "day-month",
        _DAY.format("d5") + r"(?:st|nd|rd|th)?(?:\s+of)?\s+" + _MONTH_WORD.format("m5") + r",?\s+" + _YEAR.format("y5"),
    ),
    # March 11, 2024
    (
        "month-day",
        _MONTH_WORD.format("m6") + r"\s+" + _DAY.format("d6") + r"(?:st|nd|rd|th)?,?\s+" + _YEAR.format("y6"),
    ),
)
WRITTEN_DATE = re.compile(
    r"(?<![\w.:/-])(?:"
    + "|".join(f"(?P<{name.replace('-', '_')}>{form})" for name, form in _DATE_FORMS)
    + r")(?![\w/]|[.:-]\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class WrittenDate:
    """A date found in free text: where it is, and every calendar date it can mean (two for ``03/04/2024``)."""

    start: int
    end: int
    form: str
    meanings: tuple[date, ...]
    text: str


def _valid_da(value: str) -> date | None:
    if len(value) != 8 or not value.isdigit():
        return None
    return _valid(int(value[:4]), int(value[4:6]), int(value[6:]))


def _month_of(word: str) -> int:
    return [month[:3] for month in MONTHS].index(word.lower().rstrip(".")[:3]) + 1


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_written_dates(text: str) -> list[WrittenDate]:
    """Every date written in ``text`` in a common form: ISO (``2024-03-11``, ``2024/03/11``), DICOM DA
    (``20240311``), ``11.03.2024`` (day first), ``11/03/2024`` or ``03/11/2024`` (and with dashes), ``11 March
    2024``, ``March 11, 2024`` (month names in English, full or abbreviated).

    A slashed or dashed numeric date whose first two numbers can each be the day (``03/04/2024``) has two
    meanings, day-first and month-first; one that only one order makes valid (``25/03/2024``) has one."""
    found: list[WrittenDate] = []
    for match in WRITTEN_DATE.finditer(text):
        groups = match.groupdict()
        form = match.lastgroup or ""
        meanings: list[date] = []
        if form == "iso":
            meanings = [d for d in [_valid(int(groups["y1"]), int(groups["m1"]), int(groups["d1"]))] if d]
        elif form == "da":
            meanings = [d for d in [_valid(int(groups["y2"]), int(groups["m2"]), int(groups["d2"]))] if d]
        elif form == "dotted":
            meanings = [d for d in [_valid(int(groups["y3"]), int(groups["m3"]), int(groups["d3"]))] if d]
        elif form == "numeric":
            a, b, year = int(groups["a4"]), int(groups["b4"]), int(groups["y4"])
            candidates = [_valid(year, b, a), _valid(year, a, b)]  # day first, then month first
            meanings = list(dict.fromkeys(d for d in candidates if d))
        elif form == "day_month":
            meanings = [d for d in [_valid(int(groups["y5"]), _month_of(groups["m5"]), int(groups["d5"]))] if d]
        elif form == "month_day":
            meanings = [d for d in [_valid(int(groups["y6"]), _month_of(groups["m6"]), int(groups["d6"]))] if d]
        if meanings:
            found.append(WrittenDate(match.start(), match.end(), form, tuple(meanings), match.group(0)))
    return found


def numeric_date_spellings(value: str) -> list[str]:
    """Every way :func:`find_written_dates` reads the DA ``value`` (``YYYYMMDD``) in numbers: ISO with ``-`` or
    ``/``, DA, dotted, slashed and dashed in both orders, each number with or without its leading zero."""
    if len(value) != 8 or not value.isdigit():
        return []
    year, month, day = value[:4], value[4:6], value[6:]
    months, days = {month, month.lstrip("0")}, {day, day.lstrip("0")}
    spellings = [value]
    for m in months:
        for d in days:
            spellings += [f"{year}-{m}-{d}", f"{year}/{m}/{d}", f"{d}.{m}.{year}"]
            spellings += [f"{a}{separator}{b}{separator}{year}" for a, b in ((d, m), (m, d)) for separator in "/-"]
    return spellings


def _rewrite_date(written: WrittenDate, moved: date) -> str:
    """``moved`` written as ``written`` was (same form, separators, zero padding and month word style)."""
    text = written.text
    if written.form == "da":
        return moved.strftime("%Y%m%d")
    if written.form in ("iso", "dotted"):
        separator = "." if written.form == "dotted" else text[4]
        if written.form == "iso":
            return f"{moved.year:04d}{separator}{moved.month:02d}{separator}{moved.day:02d}"
        return f"{moved.day:02d}.{moved.month:02d}.{moved.year:04d}"
    if written.form == "numeric":  # reached for one meaning only: day first if that was the valid order
        separator = "/" if "/" in text else "-"
        if written.meanings[0].day == int(text.split(separator)[0]):
            return f"{moved.day:02d}{separator}{moved.month:02d}{separator}{moved.year:04d}"
        return f"{moved.month:02d}{separator}{moved.day:02d}{separator}{moved.year:04d}"
    name = MONTHS[moved.month - 1]
    word = re.search(r"[A-Za-z]{3,}\.?", text.replace(" of ", " "))
    written_word = word.group(0) if word else name
    if len(written_word.rstrip(".")) <= 4 and written_word.rstrip(".").lower() != name:
        name = name[:3] + ("." if written_word.endswith(".") else "")
    if written_word[:1].isupper():
        name = name.upper() if written_word.rstrip(".").isupper() and len(written_word) > 1 else name.capitalize()
    if written.form == "day_month":
        return f"{moved.day} {name} {moved.year}"
    return f"{name} {moved.day}, {moved.year}"


# Who a relative's name follows: "husband John", "daughter: Mary", "mother, Ann Smith".
KINSHIP_TERMS = (
    "husband",
    "wife",
    "spouse",
    "partner",
    "fiance",
    "fiancee",
    "son",
    "daughter",
    "child",
    "mother",
    "father",
    "mum",
    "mom",
    "dad",
    "parent",
    "brother",
    "sister",
    "sibling",
    "grandmother",
    "grandfather",
    "grandson",
    "granddaughter",
    "aunt",
    "uncle",
    "niece",
    "nephew",
    "cousin",
    "guardian",
    "carer",
    "caregiver",
    "friend",
    "neighbour",
    "neighbor",
    "relative",
    "contact",
    "next of kin",
)
_KIN_STOPWORDS = frozenset(
    str.split(
        "a an the is was are were has had have and or but of in at on to for with by from as not no who which that "
        "this present aware informed notified called phoned rang visited visits visiting says said reports reported "
        "states stated will would can could may might should also too here there home accompanies accompanied "
        "accompanying died deceased alive well ill sick works lives living number phone tel telephone mobile email"
    )
)
_KINSHIP = re.compile(
    r"(?<!\w)(?P<term>"
    + "|".join(re.escape(term) + "s?" for term in sorted(KINSHIP_TERMS, key=len, reverse=True))
    + r")(?P<gap>(?:\s+(?:named|called|is|was))?\s*[:,]?\s+|\s*[:,]\s*)(?P<name>[^\W\d_][\w'\u2019-]*(?:\s+[^\W\d_][\w'\u2019-]*)?)",
    re.IGNORECASE,
)
# A telephone number: 7 or more digits, in groups separated by single spaces, dashes or parentheses, or one run
# starting with 0 or +; an e-mail address.
_PHONE = re.compile(r"(?<![\w.])(?:\+|00)?\(?\d+\)?(?:[ -]?\(?\d+\)?){2,}(?![\w]|[.,]\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_MIN_PHONE_DIGITS = 7
_DIGIT = re.compile(r"\d")
DateMode = Literal["keep", "shift", "remove"]
"""What cleaning does to the dates written in text: kept (real dates kept), shifted with the attributes, removed."""
# An age written in text: "92-year-old", "92 years old", "92 yo", "92y", "aged 92", "age: 92".
_WRITTEN_AGE = re.compile(
    r"(?<![\w.])(?:(?P<before>\d{2,3})(?P<unit>\s*-?\s*(?:years?|yrs?)(?:\s*-?\s*old)?|\s*y/?o|y)(?!\w)"
    r"|(?P<word>aged?\s*:?\s*)(?P<after>\d{2,3}))(?![\w.]|\.\d)",
    re.IGNORECASE,
)


def _token_pattern(token: Token) -> str:
    # "ß" upper-cases to "SS", which a case-insensitive match does not equate with it
    body = (_SEPARATOR_CLASS + "*").join(re.escape(part).replace("ß", "(?:ß|ss)") for part in token)
    first, last = token[0][0], token[-1][-1]
    before = "" if _unspaced(first) else r"(?<![^\W_])"
    suffix = _SUFFIX if last.isalpha() and not _unspaced(last) and len("".join(token)) >= MIN_SUFFIXED_LENGTH else ""
    after = "" if _unspaced(last) else r"(?![^\W_])"
    return before + body + suffix + after


@lru_cache(maxsize=64)
def _tokens_pattern(ordered: tuple[Token, ...]) -> re.Pattern[str]:
    """The pattern finding any of ``ordered`` (longest first): built once for the instances of one patient."""
    return re.compile("|".join(_token_pattern(token) for token in ordered), re.IGNORECASE)


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Words of the DICOM data dictionary's attribute names (``name``, ``text``, ``green``...), lower case."""
    words: set[str] = set()
    for name in data_dictionary_names():
        words.update(word.lower() for word in re.findall(r"[A-Za-z]{4,}", name))
    return frozenset(words)


class TextCleaner:
    """Removes identifying values from free text: the instance's own (names, IDs, dates, addresses), dates in
    any common written form (shifted with the instance's dates, or removed with them), telephone numbers, e-mail
    addresses, and the names that follow a kinship term (``husband John``).

    Each value of the instance is found case-insensitively, in any script (the text is decoded in the instance's
    character sets by then), with any separators between its parts (spaces, ``_``, ``^``, ``-``, ``.``, ``,``,
    ``/``, or none), with a possessive or plural suffix, as a whole word in scripts written with spaces and
    anywhere in those written without (see :data:`MIN_COMPONENT_LENGTH` for what is too short to search on its
    own).
    """

    REPLACEMENT = "***"

    def __init__(
        self,
        tokens: Iterable[Token],
        dates: DateMode = "keep",
        date_offset: int = 0,
        age_cap: int | None = None,
        removed_dates: Iterable[str] = (),
    ) -> None:
        """``dates``: what to do with dates written in the text: ``keep`` (the profile keeps real dates),
        ``shift`` (back by ``date_offset`` days, as the attributes are) or ``remove``. ``removed_dates``: the
        dates (``YYYYMMDD``) of attributes the profile removes (a birth date): removed from the text in any
        written form whatever ``dates`` says. ``age_cap``: an age of that many years or more written in the text
        (``92-year-old``, ``aged 92``) is written as that many."""
        ordered = sorted({token for token in tokens if "".join(token).strip()}, key=lambda t: (-len("".join(t)), t))
        self._tokens = tuple(ordered)
        self.dates = dates
        self.date_offset = date_offset
        self.age_cap = age_cap
        self.removed_dates = frozenset(day for day in (_valid_da(value) for value in removed_dates) if day is not None)

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        # Compiled on first use: 5-10 ms for one patient's values, and most instances have no text to clean.
        return _tokens_pattern(self._tokens) if self._tokens else None

    def finds(self, text: str, *, words: bool = True) -> bool:
        """Whether ``text`` holds one of the identifying values (control characters inside it ignored); without
        ``words``, a value that is a word of the data dictionary (``TEXT``, a name part that is also a code's
        defined term) does not count."""
        if self._pattern is None:
            return False
        for match in self._pattern.finditer(CONTROL_CHARACTERS.sub("", text)):
            if words or match.group(0).lower() not in common_words():
                return True
        return False

    def clean(self, text: str, vr: str) -> str:
        """``text`` with every identifying value replaced by ``***`` (dates shifted instead where the profile
        shifts dates), within the VR's maximum length."""
        if not text:
            return text
        # A NUL or other control character inside a word (MK\0ZORRO) hides it from the search, not from a reader.
        text = CONTROL_CHARACTERS.sub("", text)
        # Each pattern runs only where its text can be: an e-mail needs an @, a phone number, date or age a digit.
        cleaned = _EMAIL.sub(self.REPLACEMENT, text) if "@" in text else text
        cleaned = self._pattern.sub(self.REPLACEMENT, cleaned) if self._pattern is not None else cleaned
        digits = _DIGIT.search(cleaned) is not None
        if digits:
            cleaned = _PHONE.sub(_phone_replacement, cleaned)
            cleaned = self._clean_dates(cleaned)
        cleaned = _KINSHIP.sub(_kin_replacement, cleaned)
        if self.age_cap is not None and digits:
            cleaned = _WRITTEN_AGE.sub(self._cap_age, cleaned)
        limit = MAX_LENGTH.get(vr)
        return cleaned[:limit] if limit else cleaned

    def _clean_dates(self, text: str) -> str:
        if self.dates == "keep" and not self.removed_dates:
            return text
        pieces: list[str] = []
        position = 0
        for written in find_written_dates(text):
            pieces.append(text[position : written.start])
            if self.removed_dates.intersection(written.meanings):
                pieces.append(self.REPLACEMENT)  # a birth date (or any removed date) in any form, either reading
            elif self.dates == "keep":
                pieces.append(written.text)
            elif self.dates == "shift" and len(written.meanings) == 1:
                moved = written.meanings[0] - timedelta(days=self.date_offset)
                pieces.append(_rewrite_date(written, moved) if moved.year >= 1 else self.REPLACEMENT)
            else:
                # Removed with the dates, or ambiguous (03/04/2024): shifting one reading would leave the
                # other one real, so it goes.
                pieces.append(self.REPLACEMENT)
            position = written.end
        pieces.append(text[position:])
        return "".join(pieces)

    def _cap_age(self, match: re.Match[str]) -> str:
        cap = self.age_cap or 0
        if match.group("before") is not None:
            age, unit = int(match.group("before")), match.group("unit")
            return f"{cap}{unit}" if age >= cap else match.group(0)
        age = int(match.group("after"))
        return f"{match.group('word')}{cap}" if age >= cap else match.group(0)


def _phone_replacement(match: re.Match[str]) -> str:
    text = match.group(0)
    if sum(char.isdigit() for char in text) < _MIN_PHONE_DIGITS:
        return text
    if text.isdigit() and not text.startswith("0"):
        return text  # one run of digits not dialled like a number (0..., +..., groups): a count, a measurement
    dates = find_written_dates(text)
    if dates and dates[0].start == 0 and dates[0].end == len(text):
        return text  # a date (2024-03-11, 20240311): dates are judged by the profile's date options
    return TextCleaner.REPLACEMENT


def _kin_replacement(match: re.Match[str]) -> str:
    words = match.group("name").split()
    kept: list[str] = []
    for index, word in enumerate(words):
        if word.lower().strip("'\u2019-") in _KIN_STOPWORDS or word == TextCleaner.REPLACEMENT:
            return match.group("term") + match.group("gap") + " ".join([*kept, *words[index:]])
        if index == 1 and word[:1].islower():  # the second word is only taken as a surname if capitalised
            return match.group("term") + match.group("gap") + " ".join([*kept, *words[index:]])
        kept = [TextCleaner.REPLACEMENT]
    return match.group("term") + match.group("gap") + " ".join(kept)
