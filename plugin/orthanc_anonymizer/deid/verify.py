"""The residual-PHI check: does an anonymized output still carry identifying values of its original?

:func:`find_residual_phi` collects the identifying values of the original, namely the values of every attribute
that the profile removes or replaces (resolved actions X, Z, D, U and the compound codes of PS3.15 Table E.1-1a,
at any depth, file meta included), and searches the whole output for them: every element at every depth, the file
meta, private elements, and the bytes of unknown-VR (UN) and OB/OW elements decoded leniently.

What counts as a value to look for, and how it is matched (to keep false alarms rare):

- person names (PN) are split into their components (family, given, middle... of every component group, and words
  within them); each component of 4 characters or more is looked for on its own, case-insensitively, as a whole
  word (``_`` counts as a separator, and a plural or possessive ``s``, ``es`` or ``'s`` may follow); a component in
  a script written without spaces (CJK ideographs, kana, Hangul) of 2 characters or more, and the family, given
  and middle names of such a group joined (in either order), are looked for anywhere, separators between them ignored (a particle
  follows a name there directly);
- dates (DA, and the date part of DT) are looked for as whole 8-digit ``YYYYMMDD`` tokens, never inside a longer
  number or a UID, and in every written form :func:`.actions.find_written_dates` reads (``2024-03-11``,
  ``11/03/2024`` and ``03/11/2024``, ``11.03.2024``, ``11 March 2024``, ``March 11, 2024``...); where the profile
  shifts dates (RetainLongModifDates), the original dates of the attributes it shifts are looked for too;
- an overlay plane (60xx,3000) of the original still in the output, where the profile does not keep it (K), is a
  leak of kind ``overlay``: a bitmap may hold a name, and no text search reads it;
- UIDs (UI) are looked for as whole UIDs (``1.2.3`` does not match inside ``1.2.3.4``); the standard's own UIDs (SOP
  classes, transfer syntaxes) are never identifying;
- other text (IDs, descriptions, addresses, AE titles...) is looked for as a whole value, case-insensitively,
  bounded by non-alphanumerics; a value that the original also holds, as a whole value, in an attribute the profile
  keeps is not identifying under that profile (e.g. ``HEAD`` in both a removed description and a kept body part);
- descriptions, comments and labels (the rows a Clean option of Table E.1-1 would clean) are not looked for as a
  whole: a comment repeated in another description is no identifier; names, IDs and dates in them are found
  through the attributes they come from;
- skipped: values shorter than 4 characters, plain numbers of fewer than 6 digits, code strings (CS enumerations),
  times (TM), binary numbers, a few placeholder words (``ANONYMOUS``, ``UNKNOWN``...), the text of attributes the
  profile cleans (action C: the engine keeps the text and removes what it recognises in it; the names, IDs and
  dates of other attributes are still looked for inside it), and private elements other than person names (their
  values are vendor data; a patient's name or ID copied into them is found through the standard attribute).

The whole file is read, not only its data set: the values are looked for in the file meta too (the original's
meta values other than its transfer syntax and SOP class are identifying: the engine rebuilds the meta), and the
bytes outside the data set, which an output must not carry at all, are leaks of kind ``bytes`` wherever they hold
anything but zeros: the 128-byte preamble, a Data Set Trailing Padding element (FFFC,FFFC), a file meta element the
engine does not write (AE titles, addresses, private information), and anything after the last data element.

A leak names where it was found in the output (a path of tags, or ``preamble``, ``after the data set``) and which
attribute of the original the value came from; it never carries the value itself, so reports can be logged and
stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from io import BytesIO

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from orthanc_anonymizer.deid.actions import (
    CONTROL_CHARACTERS,
    MIN_COMPONENT_LENGTH,
    MONTHS,
    common_words,
    find_written_dates,
    numeric_date_spellings,
)
from orthanc_anonymizer.deid.data_set_end import bytes_after_data_set
from orthanc_anonymizer.deid.deidentification_method import MARKER_TAGS
from orthanc_anonymizer.deid.elements import (
    BINARY_VRS,
    is_overlay_data,
    is_private_creator,
    stored_element,
    tag_text,
)
from orthanc_anonymizer.deid.profiles import Action, ActionTable, Option, Profile, basic_profile
from orthanc_anonymizer.deid.pydicom_private import text_encodings
from orthanc_anonymizer.deid.reading import sequence_in_unknown
from orthanc_anonymizer.deid.uids import is_standard_uid
from orthanc_anonymizer.deid.values import NUMBER_FORMATS, number_bytes
from orthanc_anonymizer.deid.writing import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

MIN_LENGTH = 4
"""Values (and name components) shorter than this are too common to be identifying."""
MIN_NUMBER_DIGITS = 6
"""Plain numbers with fewer digits than this are not identifying (sizes, counts, small IDs)."""

_PLACEHOLDERS = frozenset(
    {
        "anonymous",
        "anonymized",
        "anonymised",
        "unknown",
        "none",
        "null",
        "test",
        "patient",
        "removed",
        "dummy",
        "yes",
        "no",
        "n/a",
    }
)
# Elements whose bytes are pixels, samples or bit planes, never text worth decoding.
_BULK_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010, 0x54001010, 0x54000100})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT", "IS", "DS"})
_SKIPPED_SOURCE_VRS = _NUMBER_VRS | BINARY_VRS | {"SQ", "CS", "TM"}
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_SOP_INSTANCE_UID = 0x00080018
_SPECIFIC_CHARACTER_SET = 0x00080005
_LATIN_1_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100"})
# U+0130, U+0131, U+017F, U+212A in UTF-8: they match ASCII letters case-insensitively (see search_written).
_CASE_FOLDING_UTF8 = (b"\xc4\xb0", b"\xc4\xb1", b"\xc5\xbf", b"\xe2\x84\xaa")

_PLAIN_NUMBER = re.compile(r"^[+-]?\d*\.?\d*(?:[eE][+-]?\d+)?$")
_DATE_TOKEN = re.compile(r"(?<![\d.])(\d{8})(?!\d)(?!\.\d)")
_UID_TOKEN = re.compile(r"(?<![\d.])(\d+(?:\.\d+)+)")
_NAME_SPLIT = re.compile(r"[\^=,\s]+")
_NAME_TRIM = ".-'\"()"


class ValueKind:
    """What kind of identifying value a leak is; decides how it is matched."""

    NAME = "name"
    DATE = "date"
    UID = "uid"
    TEXT = "text"
    BYTES = "bytes"
    """Non-zero bytes where the engine writes none (outside the data set): they may carry anything."""
    OVERLAY = "overlay"
    """An overlay plane (60xx,3000) of the original in the output where the profile does not keep it: a bitmap
    that may hold a name or a date, which no text search can read."""


PREAMBLE = "preamble"
AFTER_DATA_SET = "after the data set"
TRAILING_PADDING = "trailing padding (FFFC,FFFC) and after"
_TRAILING_PADDING = 0xFFFCFFFC
# The file meta elements the engine writes (PS3.10 7.1); any other one in an output came from elsewhere.
_META_WRITTEN = frozenset({0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013})
# Of the original's meta, what the output keeps (its transfer syntax, the SOP class) or derives (the instance UID).
_META_NOT_IDENTIFYING = frozenset({0x00020000, 0x00020001, 0x00020002, 0x00020010})
# What the engine writes into every output's meta: an original holding the same (an earlier copy anonymized again)
# holds nothing of a patient there.
_META_OF_THE_ENGINE = {0x00020012: IMPLEMENTATION_CLASS_UID, 0x00020013: IMPLEMENTATION_VERSION_NAME}


@dataclass(frozen=True)
class Leak:
    """One identifying value of the original found in the output. Tags and paths only: never the value."""

    path: str
    """Where in the output: ``"0008,1140[0]/0020,4000"`` (sequence tag, item index, ..., tag)."""
    tag: str
    """The output element holding the value, ``"GGGG,EEEE"``."""
    source: str
    """The attribute of the original that the value came from, ``"GGGG,EEEE"``."""
    source_keyword: str
    kind: str
    """``name``, ``date``, ``uid`` or ``text``."""

    def as_json(self) -> dict[str, str]:
        return {
            "Path": self.path,
            "Tag": self.tag,
            "Source": self.source,
            "SourceKeyword": self.source_keyword,
            "Kind": self.kind,
        }

    def describe(self) -> str:
        """One value-free line for people: ``"0020,4000: name from 0010,0010 (PatientName)"``."""
        if not self.source:
            return f"{self.path}: {self.kind} outside the data set"
        keyword = f" ({self.source_keyword})" if self.source_keyword else ""
        return f"{self.path}: {self.kind} from {self.source}{keyword}"


@dataclass
class ResidualPhiReport:
    """The outcome of :func:`find_residual_phi`: the leaks found and how many values were looked for."""

    leaks: list[Leak] = field(default_factory=list)
    checked_values: int = 0
    """How many distinct identifying values of the original were looked for."""

    @property
    def clean(self) -> bool:
        """True when no identifying value of the original was found in the output."""
        return not self.leaks

    def as_json(self) -> dict[str, object]:
        """JSON-ready summary (tags and paths, no values)."""
        return {
            "Clean": self.clean,
            "CheckedValues": self.checked_values,
            "Leaks": [leak.as_json() for leak in self.leaks],
        }


def find_residual_phi(original: Dataset, anonymized: Dataset, profile: Profile) -> ResidualPhiReport:
    """List every identifying value of ``original`` that still appears anywhere in ``anonymized``.

    Identifying values are those of the attributes ``profile`` removes or replaces (see the module docstring for
    what is looked for and how it is matched). Neither dataset is changed.
    """
    return IdentifyingValues.collect(original, profile).search(anonymized)


def verify_bytes(original: bytes, anonymized: bytes, profile: Profile) -> ResidualPhiReport:
    """:func:`find_residual_phi` on two DICOM files given as bytes, and the bytes of ``anonymized`` outside its data
    set (preamble, trailing padding, after the data set) checked too."""
    output = _read(anonymized)
    values = IdentifyingValues.collect(_read(original), profile)
    report = values.search(output)
    report.leaks += values.search_outside(output, [anonymized])
    return report


def _read(data: bytes) -> Dataset:
    return dcmread(BytesIO(data), force=True)


class IdentifyingValues:
    """The identifying values of one original, grouped by how they are matched, each mapped to its source tag.

    Collected from the original before the engine changes it (:meth:`collect`), then looked for in the output
    (:meth:`search`): the worker checks its output this way without parsing either file again. Collecting changes
    no value: it converts the elements the profile removes or replaces, as the engine does next anyway.

    *Strong* words (names that are not everyday DICOM words, text with several words or a digit) are found
    anywhere, as whole words; *weak* ones (a name such as ``Green`` or ``Field``, a single-word text such as
    ``Here``) only as a whole value of an output element, or a component of an output person name, so that the
    attribute names and code meanings of the output do not raise false alarms.
    """

    def __init__(self) -> None:
        self.strong: dict[str, tuple[str, str]] = {}
        """Lower-cased needle -> (source tag, kind)."""
        self.weak: dict[str, tuple[str, str]] = {}
        self.dates: dict[str, str] = {}
        self.uids: dict[str, str] = {}
        self.overlays: set[int] = set()
        """Tags of the original's Overlay Data (60xx,3000) that the profile does not keep (K)."""
        self.shifted_dates: set[str] = set()
        """Original dates (``YYYYMMDD``) of the attributes the profile shifts (RetainLongModifDates)."""
        self.shift_anchors: dict[int, str] = {}
        """Top-level DA attributes the profile shifts, with their original date: the output's value gives the
        offset."""
        self.unspaced: dict[str, tuple[str, str]] = {}
        """Lower-cased name part in a script written without spaces -> (source tag, kind): found anywhere."""
        self._strong_pattern: re.Pattern[str] | None = None

    @property
    def count(self) -> int:
        return (
            len(self.strong)
            + len(self.weak)
            + len(self.dates)
            + len(self.uids)
            + len(self.unspaced)
            + len(self.overlays)
        )

    def _forget_shift_collisions(self, anonymized: Dataset) -> None:
        """Where dates are shifted, one original date moved by the offset may fall on another original date (a
        calibration 30 days before the study, an offset of 30 days): that date in the output is the shifted one,
        and no leak. The offset is read from the output (a shifted top-level date against its original); the
        original dates that another one, shifted, lands on are not looked for."""
        if not self.shift_anchors or not self.dates:
            return
        offset = None
        for tag, original in self.shift_anchors.items():
            moved = _as_date(str(anonymized.get(tag).value or "") if tag in anonymized else "")
            before = _as_date(original)
            if moved is not None and before is not None:
                offset = before - moved
                break
        if not offset:
            return
        shifted = {_as_date(value) for value in self.shifted_dates} - {None}
        for value in list(self.dates):
            day = _as_date(value)
            if day is not None and day + offset in shifted:
                del self.dates[value]

    def overlay_leaks(self, anonymized: Dataset) -> list[Leak]:
        """An overlay plane of the original that the output still has, where the profile does not keep it."""
        return [
            Leak(tag_text(tag), tag_text(tag), tag_text(tag), _keyword(tag_text(tag)), ValueKind.OVERLAY)
            for tag in sorted(self.overlays)
            if tag in anonymized
        ]

    def search_written(self, anonymized: Dataset, written: Sequence[bytes | memoryview]) -> ResidualPhiReport:
        """:meth:`search` on ``anonymized``, written as the parts ``written`` (the header, then any pixel data
        written apart, as :meth:`~.reading.DicomInstance.output_parts` gives them), and :meth:`search_outside` on
        those bytes. The data set is answered clean at once when none of the values occurs in the header's bytes
        (the common case), else searched element by element.

        Sound because every text the search looks at is the bytes of an element as written, decoded as Latin-1
        (the only character sets this shortcut accepts) or leniently as UTF-8: an ASCII value found in such a text,
        case-insensitively, is in the bytes. Non-ASCII values, other character sets, and the four non-ASCII letters
        that match ASCII ones case-insensitively (U+0130, U+0131, U+017F, U+212A, in UTF-8) go the long way.
        """
        outside = self.search_outside(anonymized, written) + self.overlay_leaks(anonymized)
        self._forget_shift_collisions(anonymized)
        if not self.count:
            return ResidualPhiReport(leaks=outside, checked_values=0)
        if self._absent_from(anonymized, bytes(written[0])):
            return ResidualPhiReport(leaks=outside, checked_values=self.count)
        report = self.search(anonymized, overlays=False)
        report.leaks += outside
        return report

    def search_outside(self, anonymized: Dataset, written: Sequence[bytes | memoryview]) -> list[Leak]:
        """Leaks in the bytes of the file ``written`` (in parts, see :meth:`search_written`) that are outside the
        data set ``anonymized``: a preamble that is not zeros, trailing padding, a file meta element the engine does
        not write, bytes after the last data element; each a ``bytes`` leak, plus any value of the original found
        in it (named by its source)."""
        leaks: list[Leak] = []
        regions: list[tuple[str, str, bytes]] = []
        first = bytes(written[0][:132]) if written else b""
        if first[128:132] == b"DICM":
            regions.append((PREAMBLE, "", first[:128]))
        meta = getattr(anonymized, "file_meta", None)
        for tag in list(meta.keys()) if meta is not None else []:
            if int(tag) not in _META_WRITTEN:
                leaks.append(Leak(tag_text(tag), tag_text(tag), "", "", ValueKind.BYTES))
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        # The data elements of the file are those of the data set (and pixel data written apart): any other one
        # read from the bytes (one a writer appended, trailing padding) starts what is after the data set.
        known = {int(tag) for tag in anonymized.keys()} | set(_BULK_TAGS)  # noqa: SIM118 (tags, not elements)
        known.discard(_TRAILING_PADDING)
        tail = bytes_after_data_set(written, syntax, known)
        padded = tail[:4] in (b"\xfc\xff\xfc\xff", b"\xff\xfc\xff\xfc")
        regions.append((TRAILING_PADDING if padded else AFTER_DATA_SET, "", tail))
        for path, tag, data in regions:
            if not data.strip(b"\x00"):
                continue
            leaks.append(Leak(path, tag, "", "", ValueKind.BYTES))
            for source, kind in self._find_in_bytes(data):
                leaks.append(Leak(path, tag, source, _keyword(source), kind))
        return leaks

    def _find_in_bytes(self, data: bytes) -> Iterator[tuple[str, str]]:
        """(source tag, kind) of every value found in raw bytes, whatever the word (nothing belongs there)."""
        text = _decode_leniently(data)
        found: set[tuple[str, str]] = set()
        words = {**self.weak, **self.strong}
        if words:
            alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
            for match in re.finditer(rf"(?<!\w)(?:{alternatives})(?!\w)", text, re.IGNORECASE):
                found.add(words[match.group(0).lower()])
        for match in _DATE_TOKEN.finditer(text):
            if match.group(1) in self.dates:
                found.add((self.dates[match.group(1)], ValueKind.DATE))
        for match in _UID_TOKEN.finditer(text):
            if match.group(1) in self.uids:
                found.add((self.uids[match.group(1)], ValueKind.UID))
        yield from sorted(found)

    def _absent_from(self, anonymized: Dataset, data: bytes) -> bool:
        values = [*self.strong, *self.weak, *self.dates, *self.uids, *self.unspaced]
        if not all(value.isascii() and "\n" not in value for value in values):
            return False
        charset = anonymized.get(_SPECIFIC_CHARACTER_SET)
        terms = charset.value if charset is not None else None
        terms = [terms] if terms is None or isinstance(terms, str) else list(terms)
        if not all(isinstance(term, str | None) and (term or "").strip() in _LATIN_1_CHARSETS for term in terms):
            return False
        # A character set named again inside a sequence item would decode that item otherwise.
        if data.count(b"\x08\x00\x05\x00") + data.count(b"\x00\x08\x00\x05") > (charset is not None):
            return False
        if any(sequence in data for sequence in _CASE_FOLDING_UTF8):
            return False
        lowered = data.lower().replace(b"\x00", b" ")
        # A date may be written in text in other forms: every numeric spelling find_written_dates reads, and where
        # the year and the month's name are both there, the long way (11 March 2024, Mar. 11, 2024).
        for text in self.dates:
            year, month = (
                text[:4].encode(),
                MONTHS[int(text[4:6]) - 1][:3].encode() if "01" <= text[4:6] <= "12" else b"",
            )
            if year in lowered and month and month in lowered:
                return False
            values += numeric_date_spellings(text)
        return not any(value.lower().encode("ascii") in lowered for value in values)

    def search(self, anonymized: Dataset, overlays: bool = True) -> ResidualPhiReport:
        """Every place in ``anonymized`` (at any depth, file meta included) holding one of these values, and (with
        ``overlays``) every overlay plane of the original it should not have."""
        self._forget_shift_collisions(anonymized)
        report = ResidualPhiReport(checked_values=self.count)
        if overlays:
            report.leaks += self.overlay_leaks(anonymized)
        if not self.count:
            return report
        seen: set[tuple[str, str]] = set()
        for path, element, text, values in _searchable_texts(anonymized):
            for source_tag, kind in self.find(element, text, values):
                key = (path, source_tag)
                if key in seen:
                    continue
                seen.add(key)
                report.leaks.append(
                    Leak(
                        path=path,
                        tag=tag_text(element.tag),
                        source=source_tag,
                        source_keyword=_keyword(source_tag),
                        kind=kind,
                    )
                )
        return report

    @classmethod
    def collect(cls, original: Dataset, profile: Profile) -> IdentifyingValues:
        table = profile.action_table
        needles = cls()
        kept_values: set[str] = set()
        texts: dict[str, str] = {}
        shifted = Option.RetainLongModifDates in profile.options
        for dataset, stored_tag, vr in _original_elements(original):
            # The element's own tag looks it up at once; arithmetic and comparisons on a plain int (a BaseTag's ==
            # converts the other side to a Tag).
            tag = int(stored_tag)
            private = tag >> 16 & 1
            if tag & 0xFFFF == 0 or is_private_creator(tag) or vr == "SQ":
                continue
            # The file meta's copy of SOPInstanceUID follows it (the table does not list the file meta); the rest of
            # the meta is rebuilt by the engine: the original's values in it are identifying, but for those kept.
            if tag == _MEDIA_STORAGE_SOP_INSTANCE_UID:
                action = table.action_for(_SOP_INSTANCE_UID)
            elif tag >> 16 == 0x0002:
                ours = tag in _META_OF_THE_ENGINE and _raw_strings(dataset, stored_tag, vr) == [
                    _META_OF_THE_ENGINE[tag]
                ]
                action = None if tag in _META_NOT_IDENTIFYING or ours else Action.X
            else:
                action = table.action_for(tag)
            if is_overlay_data(tag) and dataset is original and action is not Action.K:
                needles.overlays.add(tag)
            if action is None or action is Action.K:
                # Kept: a value it shares with a removed attribute (the implementation's UID, a manufacturer
                # also named as institution) is not identifying under this profile.
                kept_values.update(value.lower() for value in _raw_strings(dataset, stored_tag, vr))
                continue
            if action is Action.C and vr in ("DA", "DT") and shifted:
                # Shifted (RetainLongModifDates): the original date is what must not be found, in any written form.
                for value in _raw_strings(dataset, stored_tag, vr):
                    if len(value) >= 8 and value[:8].isdigit():
                        texts.setdefault(value[:8], tag_text(tag))
                        needles.shifted_dates.add(value[:8])
                        if dataset is original and vr == "DA":
                            needles.shift_anchors.setdefault(tag, value[:8])
                continue
            if action is Action.C or vr in _SKIPPED_SOURCE_VRS or (private and vr != "PN"):
                # Cleaned text is kept on purpose; what the engine must remove from it comes from other attributes.
                continue
            try:
                element = dataset[stored_tag]
            except Exception:  # a value pydicom cannot convert is not one we can look for
                continue
            vr = element.VR
            source = tag_text(tag)
            for value in _string_values(element):
                if vr == "PN":
                    for component in _name_components(value):
                        word = component.lower()
                        target = needles.weak if word in common_words() else needles.strong
                        target.setdefault(word, (source, ValueKind.NAME))
                    for part in _unspaced_name_parts(value):
                        needles.unspaced.setdefault(part.lower(), (source, ValueKind.NAME))
                elif vr in ("DA", "DT"):
                    date = value[:8]
                    if len(date) == 8 and date.isdigit():
                        texts.setdefault(date, source)
                elif vr == "UI":
                    if not is_standard_uid(value) and _UID_TOKEN.fullmatch(value):
                        texts.setdefault(value, source)
                elif _is_identifying_text(value) and not _is_descriptive(tag):
                    texts.setdefault(value.lower(), source)
        for value, source in texts.items():
            if value in kept_values:
                continue
            if _UID_TOKEN.fullmatch(value):
                needles.uids[value] = source
            elif len(value) == 8 and value.isdigit() and _DATE_TOKEN.fullmatch(value):
                needles.dates.setdefault(value, source)
            elif value.isalpha():
                needles.weak.setdefault(value, (source, ValueKind.TEXT))
            else:
                needles.strong.setdefault(value, (source, ValueKind.TEXT))
        return needles

    def find(self, element: DataElement, text: str, values: list[str]) -> Iterator[tuple[str, str]]:
        """(source tag, kind) of every needle in an output element: its searchable ``text`` and its ``values``."""
        if self.strong:
            for match in self._pattern().finditer(text):
                word = match.group(0).lower()
                found = self.strong.get(word) or self._folded().get(word.casefold())
                if found is not None:
                    yield found
        if self.weak and element.VR != "CS":
            for value in values:
                found = self.weak.get(value.lower())
                if found is not None:
                    yield found
                if element.VR == "PN":
                    for component in _name_components(value):
                        found = self.weak.get(component.lower())
                        if found is not None:
                            yield found
        if self.unspaced:
            lowered = _NAME_SEPARATORS.sub("", text.lower())  # 黄_伊 and 黄・伊 are 黄伊
            for part, found in self.unspaced.items():
                if part in lowered:
                    yield found
        if self.dates:
            if element.VR in ("DA", "DT"):
                for value in values:
                    source = self.dates.get(value[:8])
                    if source is not None:
                        yield source, ValueKind.DATE
            for match in _DATE_TOKEN.finditer(text):
                source = self.dates.get(match.group(1))
                if source is not None:
                    yield source, ValueKind.DATE
            for written in find_written_dates(text):
                # Every reading of an ambiguous 03/04/2024 counts: either may be the original.
                for meaning in written.meanings:
                    source = self.dates.get(meaning.strftime("%Y%m%d"))
                    if source is not None:
                        yield source, ValueKind.DATE
        if self.uids and "." in text:
            for match in _UID_TOKEN.finditer(text):
                source = self.uids.get(match.group(1))
                if source is not None:
                    yield source, ValueKind.UID

    def _folded(self) -> dict[str, tuple[str, str]]:
        """The strong needles by their case-folded form (``STRASSE`` found for ``Straße``)."""
        return {word.casefold(): found for word, found in self.strong.items()}

    def _pattern(self) -> re.Pattern[str]:
        if self._strong_pattern is None:
            # Longest first, so that a whole value wins over a component it contains.
            # "ß" upper-cases to "SS", which a case-insensitive match does not equate with it.
            alternatives = "|".join(
                re.escape(word).replace("ß", "(?:ß|ss)") for word in sorted(self.strong, key=len, reverse=True)
            )
            # "_" separates words here (SMITH_JOHN), and a plural or possessive may follow (SMITHs, Smith's).
            self._strong_pattern = re.compile(
                rf"(?<![^\W_])(?:{alternatives})(?=(?:'s|s|es)?(?![^\W_]))", re.IGNORECASE
            )
        return self._strong_pattern


@lru_cache(maxsize=1)
def _cleaning_table() -> ActionTable:
    return basic_profile([Option.CleanDesc, Option.CleanStructdCont, Option.CleanGraph]).action_table


def _is_descriptive(tag: int) -> bool:
    """True for descriptions, comments and labels: the rows that the Clean options of Table E.1-1 would clean.

    Their text as a whole is not an identifier, so not a value to look for (a comment that the description
    repeats is no leak); the names, IDs and dates in them come from other attributes and are looked for.
    """
    return _cleaning_table().action_for(tag) is Action.C


def _is_identifying_text(value: str) -> bool:
    if len(value) < MIN_LENGTH or value.lower() in _PLACEHOLDERS:
        return False
    if _PLAIN_NUMBER.fullmatch(value):
        return sum(char.isdigit() for char in value) >= MIN_NUMBER_DIGITS
    return len(set(value)) > 1


def _name_components(value: str) -> Iterator[str]:
    for part in _NAME_SPLIT.split(value):
        part = part.strip(_NAME_TRIM)
        if len(part) >= MIN_LENGTH and part.lower() not in _PLACEHOLDERS and not _PLAIN_NUMBER.fullmatch(part):
            yield part


_UNSPACED_FROM = 0x2E80  # CJK radicals onwards: ideographs, kana, Hangul, full-width forms
_NAME_SEPARATORS = re.compile(r"[\s_^\-.,/\u30fb]+")


def _unspaced_name_parts(value: str) -> Iterator[str]:
    """The parts of a PN value written in a script without spaces: each component of 2 characters or more, and
    the family, given and middle names of its group joined, and the given name before the family name (a
    one-character family name is common there)."""
    for group in value.split("="):
        components = [component.strip() for component in group.split("^")]
        for part in [*components, "".join(components[:3]), "".join(components[1::-1])]:
            if len(part) >= MIN_COMPONENT_LENGTH and all(ord(character) >= _UNSPACED_FROM for character in part):
                yield part


def _string_values(element: DataElement) -> list[str]:
    """The text values of ``element`` (multi-valued ones split), stripped of padding; none for binary VRs."""
    if element.VR in BINARY_VRS or element.VR == "SQ":
        return []
    try:
        value = element.value
    except Exception:  # a value pydicom cannot convert is not one we can look for
        return []
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str | PersonName):
            text = str(item).strip(" \x00")
        elif isinstance(item, bytes):
            text = item.decode("latin-1").strip(" \x00")
        else:
            continue
        if text:
            out.append(text)
    return out


def _original_elements(dataset: Dataset) -> Iterator[tuple[Dataset, BaseTag, str]]:
    """(dataset, tag, VR) of every element at every depth, file meta last. Only sequences are converted here:
    most elements of the original are kept and need no conversion (see :func:`_raw_strings`). The tag is the
    element's own (the data set's key): looking it up again costs no conversion."""
    for item in list(dataset.values()):  # as stored, raw or converted; no look-up per tag
        tag = item.tag
        vr = item.VR or _dictionary_vr(tag)
        # A private sequence too (read as UN in implicit VR): a name inside one is as identifying as at the top.
        if vr == "SQ" or (vr == "UN" and (_dictionary_vr(tag) == "SQ" or tag >> 16 & 1)):
            try:
                element = dataset[tag]
            except Exception:
                continue
            children = element.value if element.VR == "SQ" else None
            if isinstance(element.value, bytes):  # a sequence in a UN value, as the engine reads the ones it keeps
                children = sequence_in_unknown(element.value, text_encodings(dataset))
            if children is not None:
                yield dataset, tag, "SQ"
                for child in children:
                    if isinstance(child, Dataset):
                        yield from _original_elements(child)
                continue
        yield dataset, tag, vr
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        yield from _original_elements(meta)


def _raw_strings(dataset: Dataset, tag: int, vr: str) -> list[str]:
    """The text values of an element without pydicom's conversion: its bytes as Latin-1, split at ``\\``."""
    item = stored_element(dataset, tag)
    if isinstance(item, DataElement):
        return _string_values(item)
    if item is None or vr in BINARY_VRS or vr in _NUMBER_VRS or not isinstance(item.value, bytes):
        return []
    text = item.value.decode("latin-1")
    return [value for value in (part.strip(" \x00") for part in text.split("\\")) if value]


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _searchable_texts(dataset: Dataset) -> Iterator[tuple[str, DataElement, str, list[str]]]:
    """(path, element, text, values) for every element of ``dataset`` that can hold text, at any depth, file meta
    too: binary elements as leniently decoded text (no values), text elements as their values joined by ``\\``."""
    for path, element in _walk(dataset):
        if element.VR == "SQ" or int(element.tag) in _BULK_TAGS or int(element.tag) in MARKER_TAGS:
            continue
        try:
            value = element.value
        except Exception:
            value = getattr(element, "_value", None)
        if element.VR in NUMBER_FORMATS and value is not None:
            value = number_bytes(value, element.VR)  # a name stored where numbers belong (implicit VR)
        values = [] if isinstance(value, bytes) else _string_values(element)
        text = _decode_leniently(value) if isinstance(value, bytes) else "\\".join(values)
        if isinstance(value, bytes) and b"\x00" in value:
            text += "\n" + _decode_leniently(value.replace(b"\x00", b""))  # UTF-16 text, or NULs inside words
        elif CONTROL_CHARACTERS.search(text):
            text += "\n" + CONTROL_CHARACTERS.sub("", text)
        if text:
            yield path, element, text, values


def _decode_leniently(data: bytes) -> str:
    """Bytes as text: Latin-1 (never fails), plus UTF-8 when there are non-ASCII bytes; NULs as separators."""
    text = data.decode("latin-1")
    if not data.isascii():
        text += "\n" + data.decode("utf-8", errors="replace")
    return text.replace("\x00", " ")


def _walk(dataset: Dataset, prefix: str = "") -> Iterator[tuple[str, DataElement]]:
    """(path, element) for every element at every depth, then (at the top level) those of the file meta."""
    for element in _elements(dataset):
        path = f"{prefix}/{tag_text(element.tag)}".lstrip("/")
        yield path, element
        if element.VR == "SQ" and element.value is not None:
            for index, item in enumerate(element.value):
                if isinstance(item, Dataset):
                    yield from _walk(item, f"{path}[{index}]")
    if not prefix:
        meta = getattr(dataset, "file_meta", None)
        if meta is not None:
            yield from _walk(meta, "/")


def _elements(dataset: Dataset) -> Iterator[DataElement]:
    for tag in list(dataset.keys()):
        try:
            yield dataset[tag]
        except Exception:  # an element pydicom cannot parse: fall back to its raw bytes
            raw = dataset.get_item(tag)
            if raw is not None and isinstance(getattr(raw, "value", None), bytes):
                yield DataElement(tag, "UN", raw.value)


def _keyword(tag_text: str) -> str:
    group, element = tag_text.split(",")
    return keyword_for_tag((int(group, 16) << 16) | int(element, 16))


def _as_date(value: str) -> date | None:
    if len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None
