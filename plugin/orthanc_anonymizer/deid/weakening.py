"""Which rules and options weaken a profile: keep or clean what the profile they are compared with would remove,
empty or replace.

One function, :func:`weakenings`, answers it for the three places that need it: the engine's output markers
(Patient Identity Removed ``NO`` and the rules named in De-identification Method), the audit record of every
anonymization, and the REST API's authorization (a user not allowed to ``weaken`` a profile gets 403 naming
the rule).

How actions compare (PS3.15 Table E.1-1a): X (remove), Z (empty), D (dummy), U (new UID) and the compound codes
leave nothing of the original value; C (clean) keeps the value with what the engine recognises removed; K, or no
action at all, keeps it. A rule or option weakens a profile when, for some tag, it moves the action down that
order: K or C where the profile removes, empties or replaces; K where the profile cleans. Z where the profile
removes, D where it empties, and U anywhere are not weakening: none of them carries the original value.

*Identity* attributes are those that name or directly identify the patient on their own (the direct identifiers
of HIPAA's Safe Harbor that DICOM has attributes for): the patient's names, IDs and record locator, birth date,
address, telephone numbers and telecom addresses (:data:`IDENTITY_TAGS`). A profile weakened on one of them does
not remove the patient's identity: its output says Patient Identity Removed ``NO``. Characteristics (sex, age,
size, weight: RetainPatientChars), dates of the study, institutions and devices identify only together with other
knowledge; PS3.15 keeps Patient Identity Removed ``YES`` under the options that keep them, and so do we.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR

from orthanc_anonymizer.deid import standard
from orthanc_anonymizer.deid.profiles import PRIVATE_ROW, Action, ActionTable, Option, Profile, TagPattern, table_action

IDENTITY_TAGS: dict[int, str] = {
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100030: "PatientBirthDate",
    0x00101000: "OtherPatientIDs",
    0x00101001: "OtherPatientNames",
    0x00101002: "OtherPatientIDsSequence",
    0x00101005: "PatientBirthName",
    0x00101040: "PatientAddress",
    0x00101060: "PatientMotherBirthName",
    0x00101090: "MedicalRecordLocator",
    0x00102154: "PatientTelephoneNumbers",
    0x00102155: "PatientTelecomInformation",
}
"""The attributes that say who the patient is (see the module docstring for why these)."""

_KEEPS, _CLEANS, _REMOVES = 0, 1, 2
_ODD_GROUP = TagPattern(mask=0x00010000, value=0x00010000, text="private")


@dataclass(frozen=True)
class Weakening:
    """A rule or option that keeps or cleans what the profile it is compared with removes, empties or replaces."""

    name: str
    """The rule as written in a CSV profile (``0010,0010;K``), or the option's name. Tag numbers, never values."""
    identity: bool
    """Whether it keeps or cleans an identity attribute (:data:`IDENTITY_TAGS`)."""
    dates: bool = False
    """Whether it keeps original dates (DA, DT) that the profile removes, empties, dummies or shifts: then the
    output's Longitudinal Temporal Information Modified is ``UNMODIFIED``."""


def _strength(action: Action | None) -> int:
    if action is None or action is Action.K:
        return _KEEPS
    if action is Action.C:
        return _CLEANS
    return _REMOVES


def _overlaps(first: TagPattern, second: TagPattern) -> bool:
    """Whether some tag matches both patterns."""
    return (first.value ^ second.value) & first.mask & second.mask == 0


class _Base:
    """The actions of the profile compared with, indexed so that each rule costs the tags it matches, not a scan
    of the table (a request may carry thousands of rules)."""

    def __init__(self, table: ActionTable) -> None:
        self.table = table
        self.tags = sorted({*table.table_exact, *IDENTITY_TAGS})
        self.by_mask: dict[int, dict[int, list[int]]] = {}
        self.regions = [*table.table_patterns, *table.rules]

    def actions_under(self, pattern: TagPattern) -> Iterable[tuple[int | None, Action | None]]:
        """(tag, action) for the tags ``pattern`` matches that the table names; the tag is ``None`` for a set of
        tags that a pattern row or rule covers (its action is then the row's, whatever rules say inside it)."""
        table = self.table
        if pattern.is_exact:
            yield pattern.value, table.action_for(pattern.value)
            return
        index = self.by_mask.get(pattern.mask)
        if index is None:
            index = self.by_mask[pattern.mask] = {}
            for tag in self.tags:
                index.setdefault(tag & pattern.mask, []).append(tag)
        for tag in index.get(pattern.value, ()):
            yield tag, table.action_for(tag)
        for row, action in self.regions:
            if _overlaps(pattern, row):
                yield None, action
        if _overlaps(pattern, _ODD_GROUP):
            yield None, table.private_action

    def weakens(self, action: Action, pattern: TagPattern) -> tuple[bool, bool, bool]:
        """(weakens, touches identity, keeps dates) for ``action`` on the tags of ``pattern``."""
        weakens = identity = dates = False
        for tag, base_action in self.actions_under(pattern):
            if _strength(action) < _strength(base_action):
                weakens = True
                identity = identity or tag in IDENTITY_TAGS
                dates = dates or (_strength(action) == _KEEPS and _is_date(tag))
        return weakens, identity, dates


class _Covering:
    """The patterns of the rules seen so far, to tell in constant time (per distinct mask) whether one of them
    matches every tag a pattern matches."""

    def __init__(self) -> None:
        self.values_by_mask: dict[int, set[int]] = {}

    def covers(self, pattern: TagPattern) -> bool:
        return any(
            mask & ~pattern.mask == 0 and pattern.value & mask in values for mask, values in self.values_by_mask.items()
        )

    def add(self, pattern: TagPattern) -> None:
        self.values_by_mask.setdefault(pattern.mask, set()).add(pattern.value)


def _is_date(tag: int | None) -> bool:
    try:
        return tag is not None and dictionary_VR(tag) in ("DA", "DT")
    except KeyError:
        return False


def weakenings(profile: Profile, base: Profile | None = None, chosen: Iterable[int] = ()) -> tuple[Weakening, ...]:
    """The rules and options of ``profile`` that keep or clean what ``base`` would remove, empty or replace.

    ``base`` defaults to the Basic profile with ``profile``'s options and no rules: what the engine compares a
    profile's rules with to mark its output. The API passes the site's profile (the named profile with the
    configured options) to see what a request adds or leaves out. Leaving an option out mostly removes more, but
    not always: without ``CleanPixelData`` the text burned into the pixels stays, and without
    ``RetainLongModifDates`` a calibration date that ``RetainDeviceIdent`` would otherwise keep unshifted is kept
    (named ``CleanPixelData left out``...). Rules of ``profile`` that ``base`` has too, and rules that a
    later rule covers entirely, are not counted; nor is a rule on exactly a tag in ``chosen`` (Patient's Name or
    ID given in the request: the engine writes the chosen value, whatever the rule says).
    """
    if base is None:
        base = Profile(name=profile.name, options=profile.options)
    indexed = _Base(base.action_table)
    chosen_tags = frozenset(chosen)
    inherited = Counter(base.rules)
    later = _Covering()  # walked last first: a rule is shadowed when a later one covers every tag it matches
    found: list[Weakening] = []
    for rule in reversed(profile.rules):
        pattern = rule.pattern
        shadowed = later.covers(pattern)
        later.add(pattern)
        if inherited[rule] > 0:
            inherited[rule] -= 1
            continue
        if shadowed or (pattern.is_exact and pattern.value in chosen_tags):
            continue
        weakens, identity, dates = indexed.weakens(rule.action, pattern)
        if weakens:
            found.append(Weakening(f"{pattern};{rule.action.value}", identity, dates))
    found.reverse()
    changes = [(option, option.value, base.options | {option}) for option in sorted(profile.options - base.options)]
    changes += [
        (option, f"{option.value} left out", base.options - {option})
        for option in sorted(base.options - profile.options)
    ]
    for option, name, options in changes:
        # Clean Pixel Data has no column in Table E.1-1: without it, text burned into the pixels stays.
        weakens = option is Option.CleanPixelData and option not in options
        identity = dates = False
        for tag, before, after in _option_changes(base, options):
            if _strength(after) < _strength(before):
                weakens = True
                identity = identity or tag in IDENTITY_TAGS
                dates = dates or (_strength(after) == _KEEPS and _is_date(tag))
        if weakens:
            found.append(Weakening(name, identity, dates))
    return tuple(found)


def _option_changes(base: Profile, options: frozenset[Option]) -> Iterable[tuple[int | None, Action, Action]]:
    """(tag or ``None``, action under ``base``, action under ``options`` instead) for each row of Table E.1-1 that
    no rule of ``base`` overrides."""
    table = base.action_table
    for row in standard.confidentiality_profile_rows():
        before = table_action(row["basic"], row["options"], base.options)
        after = table_action(row["basic"], row["options"], options)
        if before is after:
            continue
        if row["tag"] == PRIVATE_ROW:
            yield None, before, after
            continue
        pattern = TagPattern.parse(row["tag"])
        if any(_overlaps(rule, pattern) for rule, _ in table.rules):
            continue
        yield (pattern.value if pattern.is_exact else None), before, after


def chosen_identity(patient_name: str | None, patient_id: str | None) -> frozenset[int]:
    """The tags a request gives its own value for (``PatientName``, ``PatientID``): the ``chosen`` of
    :func:`weakenings`."""
    given = ((0x00100010, patient_name), (0x00100020, patient_id))
    return frozenset(tag for tag, value in given if value is not None)


def named(found: Iterable[Weakening], most: int = 16) -> list[str]:
    """The names of the weakening rules and options for a record (audit, job record, metadata): at most ``most``,
    then ``and N more``, so that a request with thousands of rules keeps its records small."""
    names = [weakening.name for weakening in found]
    return names if len(names) <= most else [*names[: most - 1], f"and {len(names) - most + 1} more"]


def method_values(found: Iterable[Weakening], width: int = 64, most: int = 8) -> list[str]:
    """The De-identification Method (0012,0063) values that name the weakening rules and options: LO values of at
    most ``width`` characters (``weakened by: 0010,0010;K 0010,0020;K``), at most ``most`` of them, the last
    saying how many more there are when they do not all fit."""
    lines: list[list[str]] = []
    for weakening in found:
        if lines and len(" ".join(["weakened by:", *lines[-1], weakening.name])) <= width:
            lines[-1].append(weakening.name)
        else:
            lines.append([weakening.name])
    if len(lines) > most:
        more = sum(len(line) for line in lines[most - 1 :])
        lines = [*lines[: most - 1], [f"and {more} more"]]
    return [" ".join(["weakened by:", *line])[:width] for line in lines]
