"""Profiles: the PS3.15 options and action codes, and the table that says what to do with each attribute.

A :class:`Profile` is frozen data: a name, the options chosen (PS3.15 E.3), and custom rules that override
Table E.1-1 for the tags they match. :meth:`Profile.action_table` compiles it, once, into an
:class:`ActionTable` that answers "what action for this tag?" in constant time for the engine.

Precedence (PS3.15 E.1.1 and E.3): an option's column replaces the Basic profile's action for that row. Where
two chosen options both have an entry for one row and disagree, the more protective one wins (C over K): for
example a calibration date under both ``RetainDeviceIdent`` (K) and ``RetainLongModifDates`` (C) is shifted, not
kept. ``RetainLongFullDates`` and ``RetainLongModifDates`` exclude each other and cannot be combined. A custom
rule wins over the table for every tag it matches, at every depth; among rules, the last one that matches wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property

from orthanc_anonymizer.deid import standard
from orthanc_anonymizer.errors import ProfileError


class Option(StrEnum):
    """The ten options of PS3.15 Table E.1-1, and Clean Pixel Data (E.3.1), which has no column there."""

    RetainSafePrivate = "RetainSafePrivate"
    RetainUIDs = "RetainUIDs"
    RetainDeviceIdent = "RetainDeviceIdent"
    RetainInstitutionIdent = "RetainInstitutionIdent"
    RetainPatientChars = "RetainPatientChars"
    RetainLongFullDates = "RetainLongFullDates"
    RetainLongModifDates = "RetainLongModifDates"
    CleanDesc = "CleanDesc"
    CleanStructdCont = "CleanStructdCont"
    CleanGraph = "CleanGraph"
    CleanPixelData = "CleanPixelData"

    @property
    def code(self) -> tuple[str, str]:
        """The CID 7050 (De-identification Method) code value and meaning for this option, scheme DCM."""
        return _OPTION_CODES[self]

    @property
    def explanation(self) -> str:
        """One line for people: what choosing this option keeps or cleans."""
        return _OPTION_EXPLANATIONS[self]

    @classmethod
    def parse(cls, name: str) -> Option:
        """The option named ``name`` (exact name as in the contract); :class:`ProfileError` naming it otherwise."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(option.value for option in cls)
            raise ProfileError(f"unknown option {name!r}; known options: {known}") from None


BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

_OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CleanGraph: ("113103", "Clean Graphics Option"),
    Option.CleanPixelData: ("113101", "Clean Pixel Data Option"),
    Option.CleanStructdCont: ("113104", "Clean Structured Content Option"),
    Option.CleanDesc: ("113105", "Clean Descriptors Option"),
    Option.RetainLongFullDates: ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    Option.RetainLongModifDates: ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    Option.RetainPatientChars: ("113108", "Retain Patient Characteristics Option"),
    Option.RetainDeviceIdent: ("113109", "Retain Device Identity Option"),
    Option.RetainUIDs: ("113110", "Retain UIDs Option"),
    Option.RetainSafePrivate: ("113111", "Retain Safe Private Option"),
    Option.RetainInstitutionIdent: ("113112", "Retain Institution Identity Option"),
}

_OPTION_EXPLANATIONS: dict[Option, str] = {
    Option.RetainSafePrivate: "Keep the private attributes that PS3.15 Table E.3.10-1 lists as safe; remove the rest.",
    Option.RetainUIDs: "Keep the original study, series and instance UIDs instead of replacing them.",
    Option.RetainDeviceIdent: "Keep the scanner's identity: station name, serial numbers, device labels.",
    Option.RetainInstitutionIdent: "Keep the institution's name, address and department.",
    Option.RetainPatientChars: "Keep the patient's sex, age, size, weight and other physical characteristics.",
    Option.RetainLongFullDates: "Keep every date and time unchanged.",
    Option.RetainLongModifDates: "Shift every date by one per-patient offset, so intervals between dates survive.",
    Option.CleanDesc: (
        "Keep descriptions and comments, with names, IDs, phone numbers, e-mails and relatives' names found in them "
        "removed, and dates removed or shifted as the date options say."
    ),
    Option.CleanStructdCont: "Keep structured report content, with identifying values in it removed.",
    Option.CleanGraph: "Keep graphic annotations and curves, with identifying text removed; overlay planes are removed.",
    Option.CleanPixelData: "Black out text burned into the pixels: redaction rules by device and layout, and OCR.",
}


class BurnedInAnnotationPolicy(StrEnum):
    """What Clean Pixel Data (PS3.15 E.3.1) does with an instance whose Burned In Annotation (0028,0301) is YES."""

    Redact = "Redact"
    """Black out the text (rule regions, OCR); YES becomes NO once cleaned."""
    Reject = "Reject"
    """Do not anonymize the instance: an error naming the attribute."""
    Warn = "Warn"
    """Pass its pixel data through unchanged, with a warning."""

    @classmethod
    def parse(cls, name: str) -> BurnedInAnnotationPolicy:
        """The policy named ``name``; :class:`ProfileError` naming it otherwise."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(policy.value for policy in cls)
            raise ProfileError(f"unknown BurnedInAnnotation policy {name!r}; known policies: {known}") from None


class Action(StrEnum):
    """The action codes of PS3.15 Table E.1-1a."""

    D = "D"
    Z = "Z"
    X = "X"
    K = "K"
    C = "C"
    U = "U"
    ZD = "Z/D"
    XZ = "X/Z"
    XD = "X/D"
    XZD = "X/Z/D"
    XZU = "X/Z/U*"

    @property
    def definition(self) -> str:
        """The standard's words for this code (Table E.1-1a)."""
        return standard.action_code_definitions()[self.value]

    @property
    def is_compound(self) -> bool:
        return "/" in self.value

    @classmethod
    def parse(cls, text: str) -> Action:
        """The action written ``text`` (``X``, ``x``, ``X/Z/U`` or ``X/Z/U*``); :class:`ProfileError` otherwise."""
        code = text.strip().upper()
        if code == "X/Z/U":
            code = "X/Z/U*"
        try:
            return cls(code)
        except ValueError:
            known = ", ".join(action.value for action in cls)
            raise ProfileError(f"unknown action {text!r}; known actions: {known}") from None


_TAG_TEXT = re.compile(r"^\(?\s*([0-9A-Fa-fXx]{4})\s*,?\s*([0-9A-Fa-fXx]{4})\s*\)?$")
PRIVATE_ROW = "(gggg,eeee) where gggg is odd"


@dataclass(frozen=True)
class TagPattern:
    """A tag or a tag pattern with ``x`` wildcards for hexadecimal digits, e.g. ``0010,0010`` or ``50xx,xxxx``."""

    mask: int
    value: int
    text: str

    @classmethod
    def parse(cls, text: str) -> TagPattern:
        """Parse ``GGGG,EEEE``, ``(GGGG,EEEE)`` or ``GGGGEEEE``, hex digits or ``x``; :class:`ProfileError` else."""
        match = _TAG_TEXT.match(text.strip())
        if not match:
            raise ProfileError(f"bad tag pattern {text!r}: expected GGGG,EEEE with hex digits or x wildcards")
        digits = (match.group(1) + match.group(2)).upper()
        mask = value = 0
        for char in digits:
            mask <<= 4
            value <<= 4
            if char != "X":
                mask |= 0xF
                value |= int(char, 16)
        return cls(mask=mask, value=value, text=f"{digits[:4]},{digits[4:]}".replace("X", "x"))

    @property
    def is_exact(self) -> bool:
        return self.mask == 0xFFFFFFFF

    def matches(self, tag: int) -> bool:
        return (tag & self.mask) == self.value

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Rule:
    """A custom rule: ``action`` for every attribute whose tag matches ``pattern``."""

    pattern: TagPattern
    action: Action
    source: str = ""
    """Where the rule came from (file and line), for error messages and the audit trail."""


_MOST_CACHED_ACTIONS = 65536


@dataclass(frozen=True)
class ActionTable:
    """Compiled actions: custom rules first (the last matching rule wins), then the table."""

    rules: tuple[tuple[TagPattern, Action], ...]
    """Custom rules, last first."""
    table_exact: dict[int, Action]
    table_patterns: tuple[tuple[TagPattern, Action], ...]
    private_action: Action
    """Action for private attributes not matched by a rule: X, or C (keep the safe ones) with RetainSafePrivate."""
    _actions: dict[int, Action | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    """:meth:`action_for`'s answers so far, by tag: one look-up where the patterns cost a loop each time."""

    def rule_for(self, tag: int) -> Action | None:
        """The custom rule's action for ``tag``, if a rule names it."""
        for pattern, action in self.rules:
            if (tag & pattern.mask) == pattern.value:
                return action
        return None

    def action_for(self, tag: int) -> Action | None:
        """The action for ``tag``; ``None`` where neither a rule nor the table names it (the attribute is kept).

        Private attributes (odd groups) not named by a rule get :attr:`private_action`; private creator
        elements follow their block, which the engine decides.
        """
        key = int(tag)  # a BaseTag's == converts the other side to a Tag: a plain int is looked up cheaply
        try:
            return self._actions[key]
        except KeyError:
            pass
        if len(self._actions) >= _MOST_CACHED_ACTIONS:  # a hostile file of many distinct tags: bounded memory
            self._actions.clear()
        action = self._actions[key] = self._look_up(key)
        return action

    def _look_up(self, tag: int) -> Action | None:
        if self.rules:
            action = self.rule_for(tag)
            if action is not None:
                return action
        if tag >> 16 & 1:  # private: an odd group
            return self.private_action
        action = self.table_exact.get(tag)
        if action is not None:
            return action
        for pattern, pattern_action in self.table_patterns:
            if (tag & pattern.mask) == pattern.value:
                return pattern_action
        return None


MIN_AGE_CAP = 1
MAX_AGE_CAP = 999
"""Patient's Age (AS) holds at most 999 years."""


@dataclass(frozen=True)
class Profile:
    """What to do: a base profile (always the PS3.15 Basic profile), options and custom rules."""

    name: str = "basic"
    options: frozenset[Option] = frozenset()
    rules: tuple[Rule, ...] = ()
    description: str = "PS3.15 Basic Application Level Confidentiality Profile"
    source: str = field(default="", compare=False)
    """The file the profile was read from, if any."""
    burned_in_annotation: BurnedInAnnotationPolicy = BurnedInAnnotationPolicy.Redact
    """Under CleanPixelData: what an instance declaring burned-in annotation gets (PS3.15 E.3.1)."""
    age_cap: int | None = None
    """HIPAA Safe Harbor's ages over 89: a Patient's Age of this many years or more is written as this many, and
    a kept birth date is moved so that no age derived from the kept dates is more; ``None``: ages as they are."""

    def __post_init__(self) -> None:
        if {Option.RetainLongFullDates, Option.RetainLongModifDates} <= self.options:
            raise ProfileError("options RetainLongFullDates and RetainLongModifDates exclude each other: choose one")
        if self.age_cap is not None and not MIN_AGE_CAP <= self.age_cap <= MAX_AGE_CAP:
            raise ProfileError(f"AgeCap {self.age_cap}: expected a number of years from {MIN_AGE_CAP} to {MAX_AGE_CAP}")

    def with_options(self, options: Iterable[Option | str]) -> Profile:
        """This profile with ``options`` added (names are checked)."""
        parsed = {option if isinstance(option, Option) else Option.parse(option) for option in options}
        return replace(self, options=self.options | parsed)

    def with_rules(self, rules: Iterable[Rule]) -> Profile:
        """This profile with ``rules`` appended (they win over earlier rules and the table)."""
        return replace(self, rules=(*self.rules, *rules))

    @property
    def sorted_options(self) -> list[Option]:
        """Options in the standard's column order."""
        return [option for option in Option if option in self.options]

    def describe(self) -> dict[str, object]:
        """JSON-ready summary for metadata, audit and the profiles route (no secret, no PHI)."""
        summary: dict[str, object] = {
            "Name": self.name,
            "Description": self.description,
            "Options": [option.value for option in self.sorted_options],
            "Rules": [f"{rule.pattern};{rule.action.value}" for rule in self.rules],
            "Edition": standard.EDITION,
        }
        if Option.CleanPixelData in self.options:
            summary["BurnedInAnnotation"] = self.burned_in_annotation.value
        if self.age_cap is not None:
            summary["AgeCap"] = self.age_cap
        return summary

    @cached_property
    def cleans_text(self) -> bool:
        """Whether any attribute gets action C (clean) that keeps free text: the engine then gathers the
        instance's identifying values first, to remove them from that text."""
        table = self.action_table
        return any(action is Action.C for action in table.table_exact.values()) or any(
            action is Action.C for _, action in (*table.rules, *table.table_patterns)
        )

    @cached_property
    def action_table(self) -> ActionTable:
        return _compile(self)


def table_action(basic: str, option_actions: dict[str, str], options: frozenset[Option]) -> Action:
    """The action of one Table E.1-1 row under ``options`` (see the module docstring for precedence)."""
    chosen = [option_actions[option.value] for option in options if option.value in option_actions]
    if not chosen:
        return Action.parse(basic)
    # Two options with entries for one row: the more protective wins (C over K).
    return Action.parse("C" if "C" in chosen else chosen[0])


def _compile(profile: Profile) -> ActionTable:
    table_exact: dict[int, Action] = {}
    table_patterns: list[tuple[TagPattern, Action]] = []
    private_action = Action.X
    for row in standard.confidentiality_profile_rows():
        action = table_action(row["basic"], row["options"], profile.options)
        if row["tag"] == PRIVATE_ROW:
            private_action = action
            continue
        pattern = TagPattern.parse(row["tag"])
        if pattern.is_exact:
            table_exact[pattern.value] = action
        else:
            table_patterns.append((pattern, action))
    return ActionTable(
        rules=tuple((rule.pattern, rule.action) for rule in reversed(profile.rules)),
        table_exact=table_exact,
        table_patterns=tuple(table_patterns),
        private_action=private_action,
    )


BASIC = Profile()


def basic_profile(options: Iterable[Option | str] = ()) -> Profile:
    """The PS3.15 Basic Application Level Confidentiality Profile with ``options``."""
    return BASIC.with_options(options)
