"""The engine: de-identify one DICOM dataset as PS3.15 Annex E says. Pure pydicom; knows nothing of Orthanc.

``anonymize_dataset`` changes a :class:`~pydicom.dataset.Dataset` in place and returns a report of every change;
``anonymize_bytes`` does the same for the bytes of a DICOM file (what a worker process receives and returns).
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterable, Iterator
from copy import copy
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.charset import convert_encodings, default_encoding, python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset as read_dataset_from_stream
from pydicom.filereader import read_sequence
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag, tag_in_exception
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from orthanc_anonymizer import __version__
from orthanc_anonymizer.deid import identity, standard
from orthanc_anonymizer.deid.actions import (
    DATE_VRS,
    STRING_VRS,
    TEXT_VRS,
    DateMode,
    TextCleaner,
    Token,
    dummy_value,
    empty_value,
    identifying_tokens,
    resolve_compound,
    shift_date,
)
from orthanc_anonymizer.deid.deidentification_method import add_deidentification_attributes
from orthanc_anonymizer.deid.pixels import PixelSettings, clean_pixel_data
from orthanc_anonymizer.deid.profiles import BASIC, Action, ActionTable, Option, Profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.errors import AnonymizationError, InvalidDicomError
from orthanc_anonymizer.logs import strip_values

logger = logging.getLogger(__name__)


@dataclass
class AnonymizationSettings:
    """Everything one anonymization needs besides the data. Picklable, so it travels to worker processes."""

    profile: Profile = BASIC
    hasher: KeyedHasher = field(default_factory=lambda: KeyedHasher(b"development-only-secret"), repr=False)
    patient_name: str | None = None
    """Replacement PatientName; default: a keyed pseudonym of the original patient."""
    patient_id: str | None = None
    """Replacement PatientID; default: a keyed pseudonym of the original patient."""
    record_values: bool = False
    """Keep original and new values in the report's changes (a dry run that asks for them). PHI: never log."""
    pixels: PixelSettings = field(default_factory=PixelSettings)
    """Redaction rules and OCR for the CleanPixelData option (PS3.15 E.3.1); see :mod:`.pixels`."""
    project: str = ""
    """The project the copy is made for: UIDs, pseudonyms and date offsets are keyed by it (see :mod:`.uids`)."""


@dataclass(frozen=True)
class Change:
    """What happened to one attribute. Without ``record_values`` it holds tag numbers and codes only."""

    path: str
    """Where: ``"0008,1140[0]/0008,1155"`` (sequence tag, item index, ..., tag); file meta tags start ``0002``."""
    tag: str
    """``"GGGG,EEEE"``."""
    keyword: str
    rule: str
    """The action the table or a custom rule names, e.g. ``"X/Z/D"``."""
    action: str
    """What was done: ``X`` removed, ``Z`` emptied, ``D`` dummy, ``K`` kept, ``C`` cleaned, ``U`` new UID,
    ``P`` patient pseudonym or chosen value, ``S`` date shifted (``C`` under RetainLongModifDates)."""
    changed: bool
    original: str | None = None
    new: str | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "Path": self.path,
            "Tag": self.tag,
            "Keyword": self.keyword,
            "Rule": self.rule,
            "Action": self.action,
            "Changed": self.changed,
        }
        if self.original is not None or self.new is not None:
            out["Original"] = self.original
            out["New"] = self.new
        return out


@dataclass
class AnonymizationReport:
    """The outcome of anonymizing one instance."""

    changes: list[Change] = field(default_factory=list)
    sop_class_uid: str = ""
    study_instance_uid: str = ""
    """New StudyInstanceUID (not PHI: keyed)."""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    warnings: list[str] = field(default_factory=list)
    """Messages without values, e.g. ``"0008,0020: unparsable date left empty"``."""
    pixel_regions: list[dict[str, object]] = field(default_factory=list)
    """Under CleanPixelData: the boxes blacked out in the pixels (never the text found), see :mod:`.pixels`."""

    action_counts: dict[str, int] = field(default_factory=dict)
    """How many attributes each action touched, kept even when :attr:`changes` is not."""

    def counts(self) -> dict[str, int]:
        """How many attributes each action touched (for the audit trail)."""
        return dict(self.action_counts)


_PATIENT_NAME = 0x00100010
_PATIENT_ID = 0x00100020
_ISSUER_OF_PATIENT_ID = 0x00100021
_PATIENT_BIRTH_DATE = 0x00100030
_PATIENT_AGE = 0x00101010
_AGE_REFERENCE_DATES = (0x00080020, 0x00080021, 0x00080022, 0x00080023)
"""Study, Series, Acquisition and Content Date: the first present is the date an age is counted at."""
_SOP_CLASS_UID = 0x00080016
_SPECIFIC_CHARACTER_SET = 0x00080005
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_TRANSFER_SYNTAX_UID = 0x00020010
# Data Set Trailing Padding (PS3.10 7.2): bytes with no meaning, that may hold anything; never copied.
_TRAILING_PADDING = 0xFFFCFFFC
OUTPUT_PREAMBLE = bytes(128)
"""The preamble of every output file: the input's 128 bytes are outside the data set, unchecked, never copied."""
# The file meta is rebuilt (see _Walker.process_file_meta): its version, the SOP class and instance of the data set,
# the transfer syntax, and this implementation; whatever else the sender wrote there (AE titles, addresses, private
# information, the sender's implementation) is dropped. A fixed UID under 2.25 (a UUID-5 of the project's name).
IMPLEMENTATION_CLASS_UID = "2.25.204713763176700266180703222117306360813"
# What the rebuilt meta does to each element of the input's (for the report): K kept, U follows the new SOP Instance
# UID, D written by the engine; any other element is removed (X).
_META_REBUILT = {
    0x00020000: "D",
    0x00020001: "D",
    0x00020002: "D",
    0x00020003: "U",
    _TRANSFER_SYNTAX_UID: "K",
    0x00020012: "D",
    0x00020013: "D",
}
_SYNTAX_OF_ENCODING = {
    (True, True): "1.2.840.10008.1.2",  # Implicit VR Little Endian
    (False, True): "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    (False, False): "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still read and written)
}
_DUMMIED_VRS = frozenset({"UT", "LT", "ST", "UC", "PN", "DA", "DT"})
_CODE_VRS = frozenset({"CS", "AE"})
NUMBER_FORMATS = {"FL": "f", "FD": "d", "US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q"}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TOKEN_VRS = frozenset({"PN", "LO", "SH", "AE", "UC", "CS", "DA", "DT"})
IMPLEMENTATION_VERSION_NAME = ("OANON_" + __version__)[:16]


class ItemCleaning(StrEnum):
    """How the walk treats the attributes the table does not name inside the items of a kept sequence; inherited
    by the sequences nested in them (the value is the rule a change under it reports)."""

    TABLE = ""
    """Left to the table (the top level, and sequences kept by K or U)."""
    CLEAN = "C"
    """Text cleaned of the instance's identifying values, names replaced (a sequence kept under C)."""
    DUMMY = "D"
    """Free text, names and dates replaced by dummies, codes and labels cleaned (a sequence kept under D, e.g. the
    Content Sequence of a structured report)."""


class _Walker:
    """One anonymization: the compiled table, the keys, the cleaner, and the report being written."""

    def __init__(self, dataset: Dataset, settings: AnonymizationSettings, record_changes: bool = True) -> None:
        self.settings = settings
        self.record_changes = record_changes
        self.profile = settings.profile
        self.table: ActionTable = settings.profile.action_table
        # Date offsets belong to the patient in the project; UIDs and pseudonyms also to the identity the caller
        # chose, so two copies of one study under two chosen identities are two studies, not one study under two
        # patients, and a copy given only a name shares no derived PatientID with a copy given another name.
        self.hasher = settings.hasher.scoped(settings.project)
        self.copy_hasher = settings.hasher.scoped(settings.project, settings.patient_name, settings.patient_id)
        self.report = AnonymizationReport()
        self.options = settings.profile.options
        sop_class = _text(dataset.get(_SOP_CLASS_UID))
        self.report.sop_class_uid = sop_class
        self.types = standard.attribute_types_for_sop_class(sop_class)
        self.patient_key = _patient_key(dataset)
        self.date_offset = self.hasher.date_offset_days(self.patient_key)
        self.safe_private = _safe_private_index()
        self.directory = sop_class == _MEDIA_STORAGE_DIRECTORY
        self.cleaner = TextCleaner(())

    # -- pass 1: what is identifying in this instance (for C, and for the residual check) --------------------

    def collect_identifying(self, dataset: Dataset) -> None:
        """Gather the names, IDs and dates that the profile removes, to clean them out of kept free text (C) and
        out of the codes and labels of sequences kept under D.

        Values are read only from the text-like attributes that are about to be removed or replaced, so the rest
        of the header is never converted.
        """
        tokens: set[Token] = set()
        removed_dates: set[str] = set()
        for vr, value in self._changing_values(dataset):
            tokens |= identifying_tokens(vr, value)
            if vr in DATE_VRS:
                removed_dates.add(value.strip()[:8])
        # Dates written in kept text go the way of the date attributes: shifted by the same offset, kept, or removed.
        dates: DateMode
        if Option.RetainLongModifDates in self.options:
            dates = "shift"
        elif Option.RetainLongFullDates in self.options:
            dates = "keep"
        else:
            dates = "remove"
        self.cleaner = TextCleaner(tokens, dates, self.date_offset, self.profile.age_cap, removed_dates)

    def _changing_values(self, dataset: Dataset) -> Iterator[tuple[str, str]]:
        for tag in list(dataset.keys()):
            if (tag >> 16) & 1:
                continue  # private values are vendor data; names in them are found through the standard tags
            vr = _vr_of(dataset, tag)
            if vr == "SQ":
                for item in dataset[tag].value or []:
                    yield from self._changing_values(item)
                continue
            if vr not in _TOKEN_VRS:
                continue
            action = self.table.action_for(tag)
            if action is None or action in (Action.K, Action.C, Action.U):
                continue
            try:
                value = dataset[tag].value
            except Exception:
                continue
            for item in value if isinstance(value, MultiValue | list) else [value]:
                if item is not None and str(item).strip():
                    yield vr, str(item)

    # -- pass 2: apply the actions ---------------------------------------------------------------------------

    def process(self, dataset: Dataset, path: str, keywords: tuple[str, ...], cleaning: ItemCleaning) -> None:
        private_kept_blocks: set[tuple[int, int]] = set()
        private_creators: list[int] = []
        for tag in list(dataset.keys()):
            group, elem = tag >> 16, tag & 0xFFFF
            if (
                (elem == 0x0000 and group != 0x0002)
                or group == 0x0000
                or tag == _TRAILING_PADDING
                or (group == 0x0002 and path)
                or (group == 0x0004 and not self.directory and self.table.action_for(tag) is None)
            ):
                # Group lengths go stale once attributes change (they are retired anyway); command set
                # elements do not belong in a stored instance and pydicom cannot write them; trailing padding
                # is bytes outside the meaning of the data set, whatever a rule says. File meta elements in an
                # item, and directory elements (group 0004) the table does not name outside a DICOMDIR, belong to no attribute of the
                # instance: copied, their values (AE titles, file-set IDs, file names) went out unchecked.
                self._record(path, tag, keyword="", rule="X", action="X", changed=True)
                del dataset[tag]
                continue
            if tag == _SPECIFIC_CHARACTER_SET:
                self._keep_known_character_sets(dataset, path)
            if group & 1:
                if 0x0010 <= elem <= 0x00FF:
                    private_creators.append(tag)
                    continue
                if self._process_private(dataset, tag, path, keywords, cleaning):
                    private_kept_blocks.add((group, elem >> 8))
                continue
            self._process_element(dataset, tag, path, keywords, cleaning)
        if not path:
            self._drop_overlays_without_data(dataset)
        for creator_tag in private_creators:
            group, block = creator_tag >> 16, creator_tag & 0xFF
            rule = self.table.rule_for(creator_tag)
            keep = rule in (Action.K, Action.C) if rule is not None else (group, block) in private_kept_blocks
            if not keep:
                self._record(
                    path,
                    creator_tag,
                    keyword="",
                    rule=(rule or self.table.private_action).value,
                    action="X",
                    changed=True,
                )
                del dataset[creator_tag]

    def _keep_known_character_sets(self, dataset: Dataset, path: str) -> None:
        """Specific Character Set keeps only the defined terms of PS3.3 C.12.1.1.2 (spelling slips such as
        ``iso ir 100`` corrected): it is copied to the output, and any other word there is text nobody checked
        (a name written where a term belongs). A term none can read is dropped with a warning; none left, the
        attribute goes (the default repertoire)."""
        element = dataset[_SPECIFIC_CHARACTER_SET]
        value = element.value
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace").split("\\")
        values = [str(item) for item in value] if isinstance(value, MultiValue | list | tuple) else [str(value)]
        kept = [term for term in (_character_set_term(item) for item in values) if term is not None]
        if kept == values:
            return
        self.report.warnings.append(f"{_tag_text(_SPECIFIC_CHARACTER_SET)}: unknown character set terms removed")
        self._record(path, _SPECIFIC_CHARACTER_SET, keyword="SpecificCharacterSet", rule="K", action="C", changed=True)
        if any(kept):
            dataset[_SPECIFIC_CHARACTER_SET] = DataElement(
                _SPECIFIC_CHARACTER_SET, "CS", kept[0] if len(kept) == 1 else kept
            )
        else:
            del dataset[_SPECIFIC_CHARACTER_SET]

    def _drop_overlays_without_data(self, dataset: Dataset) -> None:
        """An overlay plane whose Overlay Data (60xx,3000, type 1) the profile removed goes whole: the rest of
        its group alone would make the instance invalid (PS3.3 C.9.2)."""
        by_group: dict[int, list[int]] = {}
        for key in dataset.keys():  # noqa: SIM118 (tags, not elements)
            if 0x6000 <= key >> 16 < 0x6020 and not (key >> 16) & 1:
                by_group.setdefault(key >> 16, []).append(int(key))
        for group, leftovers in sorted(by_group.items()):
            if (group << 16 | 0x3000) in dataset:
                continue
            if self.table.action_for(group << 16 | 0x3000) not in (Action.X, Action.C):
                continue
            for tag in leftovers:
                self._record("", tag, keyword=keyword_for_tag(tag), rule="X", action="X", changed=True)
                del dataset[tag]

    def _process_private(
        self, dataset: Dataset, tag: int, path: str, keywords: tuple[str, ...], cleaning: ItemCleaning
    ) -> bool:
        """Apply the rule for one private attribute; ``True`` if it stays in the output."""
        rule = self.table.rule_for(tag)
        if rule is None:
            action = self.table.private_action
            if action is Action.C:  # RetainSafePrivate: keep exactly Table E.3.10-1's elements of this creator
                creator = _text(dataset.get((tag & 0xFFFF0000) | ((tag >> 8) & 0xFF)))
                key = (creator.strip().upper(), tag >> 16, tag & 0xFF)
                vr = _vr_of(dataset, tag)
                table_vrs = self.safe_private.get(key)
                if _safe_vr(table_vrs, vr):
                    if self.keep_container(dataset, tag, vr, path, keywords, "", cleaning):
                        self._record(path, tag, keyword="", rule="C", action="K", changed=False)
                        return True
                    if tag in dataset and (table_vrs is None or "SQ" not in table_vrs):
                        if self._clean_safe_private(dataset, tag, vr, table_vrs or frozenset()):
                            _check_kept_value(dataset, tag, _vr_of(dataset, tag))
                            self._record(path, tag, keyword="", rule="C", action="K", changed=False)
                            return True
                        self._record(path, tag, keyword="", rule="C", action="X", changed=True)
                        return False
                    # A sequence by the table, bytes that are none (UN): nobody can say what they hold.
                    if tag not in dataset:
                        self._record(path, tag, keyword="", rule="C", action="X", changed=True)
                        return False
                action = Action.X
            self._record(path, tag, keyword="", rule=self.table.private_action.value, action="X", changed=True)
            del dataset[tag]
            return False
        self._process_element(dataset, tag, path, keywords, cleaning, action=rule)
        return tag in dataset

    def _clean_safe_private(self, dataset: Dataset, tag: int, vr: str, table_vrs: frozenset[str]) -> bool:
        """Clean (C) a safe private element that stays: Table E.3.10-1 says what the vendor writes there, not what a
        given file holds. Text (LO, SH, ST, LT, UT, UC) is cleaned of the instance's names, IDs and dates as under
        C; any other value that holds one (a code, a name, bytes read as UN in implicit VR, text where the table
        gives a number), or a DS or IS value that is no number, is removed. ``False`` when it was removed."""
        element = dataset[tag]
        value = element.value
        stored = number_bytes(value, vr) if vr in NUMBER_FORMATS else value  # a name read as numbers, too
        if isinstance(stored, bytes):
            for text in (stored.decode("latin-1"), stored.replace(b"\x00", b"").decode("latin-1")):
                if self.cleaner.finds(text):
                    del dataset[tag]
                    return False
        if isinstance(value, bytes):
            return True
        if vr in TEXT_VRS:
            element.value = self._map_text(value, vr)
            return True
        items = value if isinstance(value, MultiValue | list | tuple) else [value]
        texts = [str(item) for item in items if item is not None]
        if vr in ("DS", "IS") and not all(_NUMBER.fullmatch(text.strip()) for text in texts if text.strip()):
            del dataset[tag]
            return False
        if any(self.cleaner.finds(text) for text in texts):
            del dataset[tag]
            return False
        return True

    def _process_element(
        self,
        dataset: Dataset,
        tag: int,
        path: str,
        keywords: tuple[str, ...],
        cleaning: ItemCleaning,
        action: Action | None = None,
    ) -> None:
        rule = action if action is not None else self.table.action_for(tag)
        vr = _vr_of(dataset, tag)
        keyword = keyword_for_tag(tag) if not (tag >> 16) & 1 else ""
        if rule is None and not _known_tag(tag):
            # Neither the table nor the data dictionary knows it (newer than the dictionary, or a damaged
            # length that made bytes look like a tag): nobody can say it is harmless, so it goes.
            self._record(path, tag, keyword=keyword, rule="unknown", action="X", changed=True)
            del dataset[tag]
            return
        if rule is None and vr != "SQ" and _text_where_none_belongs(tag, vr):
            # A name, or text, under a tag the dictionary gives a binary VR (a damaged tag, or a misuse): kept as
            # the table would keep that attribute, it would carry text nobody has checked.
            self._record(path, tag, keyword=keyword, rule="vr-mismatch", action="X", changed=True)
            del dataset[tag]
            return
        if rule is None:
            if self.keep_container(dataset, tag, vr, path, keywords, keyword, cleaning):
                pass
            elif tag not in dataset:
                self._record(path, tag, keyword=keyword, rule="unknown", action="X", changed=True)
            elif cleaning is not ItemCleaning.TABLE:
                self._clean_untabled(dataset, tag, vr, path, cleaning)
            else:
                _check_kept_value(dataset, tag, vr)
            return
        resolved = rule
        if rule.is_compound:
            attribute_type = self.types.get("/".join((*keywords, keyword))) if self.types is not None else None
            resolved = resolve_compound(rule, attribute_type, self.types is not None)
        if resolved is Action.C and _is_overlay_data(tag):
            # CleanGraph: an overlay plane is a bitmap that may hold a name or a date, and nothing reads text in
            # it: the plane is removed (PS3.15 E.3.3 allows it), with the rest of its group below.
            resolved = Action.X
        try:
            self._apply(dataset, tag, vr, keyword, rule, resolved, path, keywords, cleaning)
        except AnonymizationError:
            raise
        except Exception as error:
            if tag in dataset:
                del dataset[tag]
            self.report.warnings.append(f"{_tag_text(tag)}: unreadable value removed ({type(error).__name__})")
            self._record(path, tag, keyword=keyword, rule=rule.value, action="X", changed=True)

    def _apply(
        self,
        dataset: Dataset,
        tag: int,
        vr: str,
        keyword: str,
        rule: Action,
        action: Action,
        path: str,
        keywords: tuple[str, ...],
        cleaning: ItemCleaning,
    ) -> None:
        if action is Action.X:
            self._record(path, tag, keyword=keyword, rule=rule.value, action="X", changed=True, dataset=dataset)
            del dataset[tag]
            return
        if action is not Action.Z and self.keep_container(
            dataset,
            tag,
            vr,
            path,
            keywords,
            keyword,
            _container_mode(action, cleaning),
            record=(rule.value, action.value),
        ):
            return
        if tag not in dataset:  # a UN value that began like a sequence and is none: nobody can say what it holds
            self._record(path, tag, keyword=keyword, rule=rule.value, action="X", changed=True)
            return
        element = dataset[tag]
        before = element.value
        if vr == "SQ":  # kept sequences went to keep_container: this one is emptied (Z)
            self._record(path, tag, keyword=keyword, rule=rule.value, action="Z", changed=bool(before), dataset=dataset)
            element.value = Sequence()
            return
        if action is Action.K:
            _check_kept_value(dataset, tag, vr)
            self._record(path, tag, keyword=keyword, rule=rule.value, action="K", changed=False)
            return
        if action is Action.Z:
            new: Any = empty_value(vr)
            label = "Z"
        elif action is Action.D:
            new = self._uid_values(before) if vr == "UI" else dummy_value(vr)
            label = "D"
        elif action is Action.U:
            new = self._uid_values(before)
            label = "U"
        else:  # C
            new, label = self._clean_value(tag, vr, before)
        if vr == "UN" and isinstance(new, str):
            new = new.encode("ascii", "replace")
        element.value = new
        changed = _as_text(before) != _as_text(element.value)
        self._record(
            path,
            tag,
            keyword=keyword,
            rule=rule.value,
            action=label,
            changed=changed,
            original=before,
            new=element.value,
        )

    def keep_container(
        self,
        dataset: Dataset,
        tag: int,
        vr: str,
        path: str,
        keywords: tuple[str, ...],
        keyword: str,
        cleaning: ItemCleaning,
        record: tuple[str, str] | None = None,
    ) -> bool:
        """Whether the element at ``tag`` is a sequence that stays in the output; when it is, walk its items.

        Every kept sequence comes here, whatever kept it (a K, C, D or U action or rule, a compound code resolving
        to one of them, a safe private sequence under RetainSafePrivate, an attribute the table does not name):
        the sequence stays, but every element of every item gets its own action at every depth, as if it stood
        at the top (PS3.15 E.1-1a: K is cleaned for sequences); private elements inside are judged under their
        own creator in their item. A kept element of unknown VR (UN) that holds a sequence (PS3.5 6.2.2: items in
        implicit VR little endian) is read as one and walked the same; if it begins like a sequence but is
        none, it is removed (``False``, ``tag`` no longer in ``dataset``). ``vr``: the element's VR as read
        (:func:`_vr_of`), so that no other element is converted here. ``record``: the (rule, action) to report for
        the sequence itself.
        """
        if vr not in ("SQ", "UN") or not self._open_unknown_sequence(dataset, tag):
            return False
        if record is not None:
            self._record(path, tag, keyword=keyword, rule=record[0], action=record[1], changed=False)
        for index, item in enumerate(dataset[tag].value or []):
            self.process(item, f"{path}{_tag_text(tag)}[{index}]/", (*keywords, keyword), cleaning)
        return True

    @staticmethod
    def _open_unknown_sequence(dataset: Dataset, tag: int) -> bool:
        """Whether ``tag`` is a sequence, once a UN value holding one is read into items."""
        element = dataset[tag]
        if element.VR == "SQ":
            return True
        if element.VR != "UN" or not isinstance(element.value, bytes) or not element.value.startswith(_ITEM_TAG_LE):
            return False
        sequence = sequence_in_unknown(element.value, dataset._character_set)
        if sequence is None:
            del dataset[tag]
            return False
        dataset[tag] = DataElement(tag, "SQ", sequence)
        return True

    def _uid_values(self, value: Any) -> Any:
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace").strip("\x00 ")
        if value is None or value == "":
            return self.copy_hasher.uid("empty")
        if isinstance(value, MultiValue | list | tuple):  # a person name iterates too, by character: one value
            return [self.copy_hasher.uid(str(item)) for item in value]
        return self.copy_hasher.uid(str(value))

    def _clean_value(self, tag: int, vr: str, value: Any) -> tuple[Any, str]:
        """Action C: dates shifted (RetainLongModifDates), text cleaned of identifying values, names replaced."""
        if vr in DATE_VRS or vr == "TM":
            if Option.RetainLongModifDates in self.options and vr in DATE_VRS:
                return self._shift(tag, vr, value), "S"
            if Option.RetainLongFullDates in self.options or vr == "TM":
                if _temporal_values_valid(value, vr):
                    return value, "K"
                # Not a date or time (a damaged length reads the next attributes into it): not kept as it is
                self.report.warnings.append(f"{_tag_text(tag)}: value not a valid {vr}, replaced by a dummy")
            return dummy_value(vr), "D"
        if vr == "PN":
            return dummy_value(vr), "D"
        if vr in TEXT_VRS:
            return self._map_text(value, vr), "C"
        return value, "C"

    def _shift(self, tag: int, vr: str, value: Any) -> Any:
        values = (
            list(value)
            if isinstance(value, list | tuple)
            or (value is not None and not isinstance(value, str) and hasattr(value, "__iter__"))
            else [value]
        )
        shifted = []
        for item in values:
            text = "" if item is None else str(item)
            moved = shift_date(text, vr, self.date_offset)
            if moved is None:
                self.report.warnings.append(f"{_tag_text(tag)}: unparsable date emptied")
                moved = ""
            shifted.append(moved)
        return shifted if len(shifted) > 1 else shifted[0]

    def _map_text(self, value: Any, vr: str) -> Any:
        if value is None:
            return value
        if isinstance(value, str):
            return self.cleaner.clean(value, vr)
        return [self.cleaner.clean(str(item), vr) for item in value]

    def _clean_untabled(self, dataset: Dataset, tag: int, vr: str, path: str, mode: ItemCleaning) -> None:
        """Inside a sequence being cleaned (C) or dummied (D), attributes the table does not name are handled
        by their VR: under C, text is cleaned and names replaced; under D, free text (UT, LT, ST, UC) and names
        are replaced by dummies, and codes and labels in SH and LO are cleaned as under C (so a report keeps its
        structure, and D never keeps more than C); dates follow the temporal options (kept, shifted, or a dummy).
        Under both, a CS or AE value holding an identifying value of the instance is replaced by a dummy."""
        if vr in _CODE_VRS:
            # A code (CS, AE) holds no free text, but a hostile or careless writer can put a name there: one that
            # holds an identifying value of this instance is replaced by a dummy (a cleaned code is no code).
            element = dataset[tag]
            before = element.value
            items = before if isinstance(before, MultiValue | list) else [before]
            if not any(self.cleaner.finds(str(item), words=False) for item in items if item is not None):
                return
            new, label = dummy_value(vr), "D"
        elif mode is ItemCleaning.DUMMY:
            if vr not in _DUMMIED_VRS and vr not in TEXT_VRS:
                return
            element = dataset[tag]
            before = element.value
            if vr in DATE_VRS or vr == "TM":
                new, label = self._clean_value(tag, vr, before)
            elif vr in TEXT_VRS and vr not in _DUMMIED_VRS:
                # Codes and labels in SH and LO stay (a report keeps its structure), cleaned as under C where they
                # hold a name or ID that is not a data dictionary word ("Report Text" stays when a placeholder
                # name reads "Enter text"): D on a sequence never keeps a name that C would remove.
                items = before if isinstance(before, MultiValue | list) else [before]
                if not any(self.cleaner.finds(str(item), words=False) for item in items if item is not None):
                    return
                new, label = self._map_text(before, vr), "C"
            else:
                new, label = dummy_value(vr), "D"
        else:
            if vr not in TEXT_VRS and vr not in DATE_VRS and vr not in ("PN", "TM"):
                return
            element = dataset[tag]
            before = element.value
            new, label = self._clean_value(tag, vr, before)
        element.value = new
        changed = _as_text(before) != _as_text(element.value)
        if changed:
            self._record(
                path,
                tag,
                keyword=keyword_for_tag(tag),
                rule=mode,
                action=label,
                changed=True,
                original=before,
                new=element.value,
            )

    def _record(
        self,
        path: str,
        tag: int,
        *,
        keyword: str,
        rule: str,
        action: str,
        changed: bool,
        dataset: Dataset | None = None,
        original: Any = None,
        new: Any = None,
    ) -> None:
        """Count ``action`` and, when changes are recorded, report it for the element ``tag`` under ``path``:
        ``rule`` is what decided (an action code, an option, ``meta``...), ``changed`` whether the value differs.
        With ``record_values``, ``original`` (else read from ``dataset``) and ``new`` are reported too."""
        self.report.action_counts[action] = self.report.action_counts.get(action, 0) + 1
        if not self.record_changes:
            return
        tag_text = _tag_text(tag)
        if self.settings.record_values:
            if dataset is not None and original is None and tag in dataset:
                try:
                    original = dataset[tag].value
                except Exception:
                    original = None
            self.report.changes.append(
                Change(f"{path}{tag_text}", tag_text, keyword, rule, action, changed, _as_text(original), _as_text(new))
            )
        else:
            self.report.changes.append(Change(f"{path}{tag_text}", tag_text, keyword, rule, action, changed))

    # -- after the walk: patient identity, markers, file meta ------------------------------------------------

    def set_patient_identity(self, dataset: Dataset) -> None:
        for tag, chosen, derive, vr in (
            (_PATIENT_NAME, self.settings.patient_name, self.copy_hasher.patient_name, "PN"),
            (_PATIENT_ID, self.settings.patient_id, self.copy_hasher.patient_id, "LO"),
        ):
            if chosen is None and self.table.rule_for(tag) is not None:
                continue  # a custom rule for it is the last word: the walk applied it (Z empty, D dummy, K kept...)
            if chosen is not None and not identity.encodable(chosen, _instance_encodings(dataset)):
                raise AnonymizationError(
                    f"{_tag_text(tag)} {keyword_for_tag(tag)}: the chosen value has characters the instance's "
                    "Specific Character Set (0008,0005) cannot hold"
                )
            value = chosen if chosen is not None else derive(self.patient_key)
            before = _text(dataset.get(tag)) if tag in dataset else None
            dataset.add_new(tag, vr, value)
            self._record(
                "",
                tag,
                keyword=keyword_for_tag(tag),
                rule="P",
                action="P",
                changed=before != value,
                original=None,
                new=value,
            )

    def cap_age(self, dataset: Dataset, cap: int) -> None:
        """HIPAA Safe Harbor (45 CFR 164.514(b)(2)(i)(C)): every age over 89 is one category. A Patient's Age of
        ``cap`` years or more becomes ``cap`` years; a kept birth date that makes the patient ``cap`` or older at
        the study (or series, acquisition, content) date is moved forward so that the age it gives is ``cap``."""
        age = dataset.get(_PATIENT_AGE)
        text = _text(age)
        if text.endswith("Y") and text[:-1].isdigit() and int(text[:-1]) >= cap:
            capped = f"{cap:03d}Y"
            dataset[_PATIENT_AGE].value = capped
            self._record(
                "",
                _PATIENT_AGE,
                keyword="PatientAge",
                rule="AgeCap",
                action="C",
                changed=text != capped,
                original=text,
                new=capped,
            )
        birth = _text(dataset.get(_PATIENT_BIRTH_DATE))
        reference = next((_text(dataset.get(tag)) for tag in _AGE_REFERENCE_DATES if _text(dataset.get(tag))), "")
        if len(birth) < 8 or len(reference) < 8 or not (birth[:8] + reference[:8]).isdigit():
            return
        born, then = int(birth[:8]), int(reference[:8])
        if (then - born) // 10000 < cap:  # YYYYMMDD differences: whole years of age
            return
        # The same month and day, cap years before the reference date (29 February into a year without one: the 28th)
        year, month, day = then // 10000 - cap, then // 100 % 100, then % 100
        moved = f"{year:04d}{month:02d}{day if day <= 28 or month != 2 or _leap(year) else 28:02d}"
        dataset[_PATIENT_BIRTH_DATE].value = moved
        self._record(
            "",
            _PATIENT_BIRTH_DATE,
            keyword="PatientBirthDate",
            rule="AgeCap",
            action="C",
            changed=True,
            original=birth,
            new=moved,
        )

    def process_file_meta(self, dataset: Dataset) -> None:
        """Rebuild the file meta (PS3.10 7.1) from the data set and this implementation, and zero the preamble.

        Kept from the input: only the Transfer Syntax UID (the data set is written in it); where the input had no
        file meta, the encoding it was read in names it. Everything else the sender wrote outside the data set
        (AE titles, presentation addresses, private information, its implementation's UID and name) is dropped.
        """
        dataset.preamble = OUTPUT_PREAMBLE
        meta = getattr(dataset, "file_meta", None)
        if meta is None:
            meta = dataset.file_meta = FileMetaDataset()
        syntax = meta.get(_TRANSFER_SYNTAX_UID)
        # The data set's SOP Class and Instance UIDs as the walk left them; where a rule removed one, the meta's,
        # through the keyed hash as any UID (a standard one comes back unchanged).
        sop_class = _text(dataset.get(_SOP_CLASS_UID)) or self.copy_hasher.uid(_text(meta.get(0x00020002)))
        if 0x00080018 in dataset and not _text(dataset.get(0x00080018)):
            raise AnonymizationError(
                "0008,0018 SOP Instance UID: the rule for it leaves it empty, and a DICOM file needs one "
                "(use U for a new UID, or X)"
            )
        sop_instance = _text(dataset.get(0x00080018)) or self.copy_hasher.uid(_text(meta.get(0x00020003)))
        for tag in list(meta.keys()):
            action = _META_REBUILT.get(tag, "X")
            self._record(
                "", tag, keyword=keyword_for_tag(tag), rule="meta", action=action, changed=action != "K", dataset=meta
            )
            del meta[tag]
        meta.FileMetaInformationVersion = b"\x00\x01"
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_instance
        if syntax is not None:
            meta[_TRANSFER_SYNTAX_UID] = syntax
        else:
            implicit, little = dataset.original_encoding
            meta.TransferSyntaxUID = _SYNTAX_OF_ENCODING.get(
                (bool(implicit), bool(little)), _SYNTAX_OF_ENCODING[True, True]
            )
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME


def sequence_in_unknown(value: bytes, encoding: str | list[str]) -> Sequence | None:
    """The items of a UN value that holds a sequence (PS3.5 6.2.2: implicit VR little endian), every element read;
    ``None`` when it is no sequence (it must begin with an item tag and parse to its end)."""
    if not value.startswith(_ITEM_TAG_LE):
        return None
    try:
        sequence = read_sequence(BytesIO(value), True, True, len(value), encoding)
        for item in sequence:
            for _ in _walk_tags(item):
                pass
    except Exception:
        return None
    return sequence


def _container_mode(action: Action, cleaning: ItemCleaning) -> ItemCleaning:
    """How the items of a sequence kept by ``action`` are walked, inside a sequence walked as ``cleaning``."""
    if action is Action.D or cleaning is ItemCleaning.DUMMY:
        return ItemCleaning.DUMMY
    if action is Action.C or cleaning is ItemCleaning.CLEAN:
        return ItemCleaning.CLEAN
    return ItemCleaning.TABLE


def anonymize_dataset(
    dataset: Dataset, settings: AnonymizationSettings, *, record_changes: bool = True
) -> AnonymizationReport:
    """De-identify ``dataset`` in place (file meta included) and report what was done; without
    ``record_changes`` the report counts the changes but does not list them (when nobody reads them).

    Pixel data is decoded only under CleanPixelData, for instances that need it (:mod:`.pixels`). Raises
    :class:`AnonymizationError` (naming tags, not values) when the dataset cannot be anonymized safely.
    """
    try:
        walker = _Walker(dataset, settings, record_changes)
        if Option.CleanPixelData in settings.profile.options:
            _clean_pixels(dataset, settings, walker)
        # Always: under D too, the items of a kept sequence (a report's Content Sequence) are cleaned of them.
        walker.collect_identifying(dataset)
        walker.process(dataset, "", (), ItemCleaning.TABLE)
        if settings.profile.age_cap is not None:
            walker.cap_age(dataset, settings.profile.age_cap)
        walker.set_patient_identity(dataset)
        add_deidentification_attributes(dataset, settings.profile, settings.patient_name, settings.patient_id)
        walker.process_file_meta(dataset)
    except AnonymizationError:
        raise
    except Exception as error:
        # pydicom converts values lazily, so a damaged value surfaces here; its message may quote the value.
        raise AnonymizationError(f"damaged attribute ({strip_values(str(error))}): {type(error).__name__}") from None
    report = walker.report
    report.study_instance_uid = _text(dataset.get(0x0020000D))
    report.series_instance_uid = _text(dataset.get(0x0020000E))
    report.sop_instance_uid = _text(dataset.get(0x00080018))
    return report


def _clean_pixels(dataset: Dataset, settings: AnonymizationSettings, walker: _Walker) -> None:
    """PS3.15 E.3.1, before the walk (the redaction rules select by attributes the walk may remove)."""
    outcome = clean_pixel_data(dataset, settings.profile, settings.pixels)
    walker.report.pixel_regions.extend(outcome.regions)
    walker.report.warnings.extend(outcome.warnings)
    for tag in outcome.changed_tags:
        walker._record(
            "", tag, keyword=keyword_for_tag(tag), rule=Option.CleanPixelData.value, action="C", changed=True
        )


def read_dataset(data: bytes) -> Dataset:
    """Parse the DICOM file ``data``: a preamble, ``DICM`` and the file meta, or (as Orthanc accepts too) a bare data
    set without them, in Implicit or Explicit VR, either endianness.

    Raises :class:`InvalidDicomError` naming what is wrong, never quoting content.
    """
    return _parse(data, stop_before_pixels=False)[0]


def _parse(data: bytes, stop_before_pixels: bool) -> tuple[Dataset, int]:
    """The data set of ``data``, and where the parse stopped (at the pixel data with ``stop_before_pixels``)."""
    bare = len(data) < 132 or data[128:132] != b"DICM"
    if bare and not _starts_like_a_data_set(data):
        raise InvalidDicomError(
            "not a DICOM file: no 'DICM' prefix after a 128-byte preamble, and no data set element at its start"
        )
    try:
        stream = BytesIO(data)
        dataset = dcmread(stream, force=bare, stop_before_pixels=stop_before_pixels)
        position = stream.tell()
        meta = getattr(dataset, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is not None and not isinstance(syntax, str):  # several values: a damaged file meta
            raise InvalidDicomError("(0002,0010) Transfer Syntax UID: not one UID: the file meta is damaged")
        if syntax is not None and not _UID_FORM.fullmatch(syntax.strip("\x00 ")):
            # The one meta value the output keeps (the data set is written in it): it must be a UID, not text.
            raise InvalidDicomError("(0002,0010) Transfer Syntax UID: not a UID: the file meta is damaged")
        # Read every element now: a truncated or malformed file must fail here, not half-way through the walk.
        for _ in _walk_tags(dataset):
            pass
        if stop_before_pixels and position < len(data):
            return dataset, position
        _check_complete(dataset, data)
    except InvalidDicomError:
        raise
    except PydicomInvalidDicomError as error:
        raise InvalidDicomError(f"not a valid DICOM file ({type(error).__name__})") from None
    except Exception as error:
        raise InvalidDicomError(f"damaged DICOM file: {type(error).__name__} while parsing") from None
    _check_instance(dataset)
    return dataset, position


def _check_instance(dataset: Dataset) -> None:
    if 0x00080018 not in dataset:
        # Orthanc refuses these too: it files every instance under its SOP Instance UID.
        raise InvalidDicomError("no SOP Instance UID (0008,0018): not an instance (a DICOMDIR?), or cut short")


def _starts_like_a_data_set(data: bytes) -> bool:
    """Whether ``data`` opens with a data element of group 0002 or 0008 (in either byte order), as every file
    without a preamble that DICOM toolkits (and Orthanc) read does: the file meta, or Specific Character Set and the
    other identifying attributes of group 0008."""
    return len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


@dataclass
class DicomInstance:
    """A DICOM file parsed for anonymization: its data set, and where its pixel data was left unparsed.

    When the profile leaves the pixels alone (no CleanPixelData, no rule for (7FE0,0010)) and removes whatever
    follows the Pixel Data element, only the header (and what follows) is parsed: the pixel data goes to the
    output as the very bytes pydicom would write for it, without being read into the data set or copied.
    """

    dataset: Dataset
    data: bytes
    pixel_offset: int | None = None
    """Where the unparsed (7FE0,0010) element starts in ``data``; ``None``: the file was parsed whole."""
    pixel_end: int | None = None
    """Where it ends; elements after it were parsed into :attr:`dataset` (the profile removes them all)."""

    def output_parts(self) -> list[bytes | memoryview]:
        """The anonymized file, in pieces to write one after the other (the pixel data is not copied).

        Raises :class:`AnonymizationError` when the data set cannot be written.
        """
        if self.pixel_offset is not None and any(tag > _PIXEL_DATA for tag in self.dataset.keys()):  # noqa: SIM118 (tags, not elements)
            # Cannot happen (the profile removes every element after the pixel data, the engine adds none there);
            # but one written before the spliced pixel data would be out of order.
            raise AnonymizationError("internal error: an attribute after the pixel data")
        try:
            header = write_dataset(self.dataset)
        except Exception as error:
            raise AnonymizationError(f"could not write the anonymized instance: {type(error).__name__}") from None
        if self.pixel_offset is None:
            return [header]
        return [header, memoryview(self.data)[self.pixel_offset : self.pixel_end]]

    def output_bytes(self) -> bytes:
        """The anonymized file as one ``bytes``."""
        return b"".join(self.output_parts())


def read_instance(data: bytes, profile: Profile) -> DicomInstance:
    """Parse ``data`` for anonymization under ``profile``: the header only, where the pixel data can go to the
    output untouched (see :class:`DicomInstance`); otherwise the whole file, as :func:`read_dataset`.

    Raises :class:`InvalidDicomError` exactly where :func:`read_dataset` would.
    """
    if not _pixels_pass_through(profile):
        return DicomInstance(read_dataset(data), data)
    try:
        header, position = _parse(data, stop_before_pixels=True)
    except InvalidDicomError:
        return DicomInstance(read_dataset(data), data)  # the full parse says what is wrong, in its own words
    if position >= len(data):
        return DicomInstance(header, data)  # no pixel data: parsed whole, and checked as read_dataset does
    end = _pixel_data_end(header, data, position)
    if end is None or (end < len(data) and not _read_trailer(header, data, end, profile)):
        return DicomInstance(read_dataset(data), data)
    _check_instance(header)
    return DicomInstance(header, data, position, end)


_PIXEL_DATA = 0x7FE00010


def _pixels_pass_through(profile: Profile) -> bool:
    """Whether ``profile`` leaves (7FE0,0010) as it is: no CleanPixelData and no rule or table row for it."""
    return Option.CleanPixelData not in profile.options and profile.action_table.action_for(_PIXEL_DATA) is None


_PIXEL_TAG_BYTES = {True: b"\xe0\x7f\x10\x00", False: b"\x7f\xe0\x00\x10"}  # by little endian
_ITEM_TAG_LE = b"\xfe\xff\x00\xe0"


def _pixel_data_end(header: Dataset, data: bytes, offset: int) -> int | None:
    """Where the Pixel Data element that starts at ``offset`` (where the header stopped) ends, when pydicom would
    write it back byte for byte (see :func:`write_dataset`); ``None`` otherwise (then the file is parsed whole).

    pydicom writes Pixel Data with its value padded to an even length, with an undefined length (then
    encapsulated, closed by a Sequence Delimiter of length 0) exactly when the transfer syntax is compressed,
    and, in explicit VR, with the VR read from the file; a file that differs in any of these is parsed whole.
    """
    implicit, little = header.original_encoding
    if implicit is None or little is None:
        return None
    meta = getattr(header, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_private or not syntax.is_transfer_syntax or syntax.is_deflated:
        return None
    if (syntax.is_implicit_VR, syntax.is_little_endian) != (implicit, little):
        return None  # pydicom writes in the transfer syntax's encoding, not the one the file was read in
    if data[offset : offset + 4] != _PIXEL_TAG_BYTES[little]:
        return None
    order = "<" if little else ">"
    if implicit:
        if not little or syntax.is_compressed or offset + 8 > len(data):
            return None
        (length,) = struct.unpack_from(order + "I", data, offset + 4)
        value = offset + 8
    else:
        if data[offset + 4 : offset + 6] not in (b"OB", b"OW") or data[offset + 6 : offset + 8] != b"\x00\x00":
            return None
        if offset + 12 > len(data):
            return None
        (length,) = struct.unpack_from(order + "I", data, offset + 8)
        value = offset + 12
    if length == _UNDEFINED_LENGTH:
        if not (little and syntax.is_compressed and data[value : value + 4] == _ITEM_TAG_LE):
            return None
        # pydicom reads the items one by one, to the Sequence Delimiter, which must have length 0.
        position = value
        while data[position : position + 4] == _ITEM_TAG_LE and position + 8 <= len(data):
            (item_length,) = struct.unpack_from("<I", data, position + 4)
            if item_length == _UNDEFINED_LENGTH:
                return None
            position += 8 + item_length
        if data[position : position + 8] != _SEQUENCE_DELIMITER:
            return None
        return position + 8
    if syntax.is_compressed or length % 2 or value + length > len(data):
        return None
    return value + int(length)


def _read_trailer(header: Dataset, data: bytes, start: int, profile: Profile) -> bool:
    """Parse the elements after the pixel data (e.g. (FFFC,FFFC) Data Set Trailing Padding, (FFFA,FFFA) Digital
    Signatures Sequence) into ``header``, where the engine handles them like any other; ``True`` when every one
    of them is public and removed (X) by ``profile``, so that nothing is written after the pixel data."""
    implicit, little = header.original_encoding
    stream = BytesIO(data)
    stream.seek(start)
    try:
        trailer = read_dataset_from_stream(stream, bool(implicit), bool(little))
    except Exception:
        return False
    tags = list(trailer.keys())
    if not tags or any(tag <= _PIXEL_DATA or (tag >> 16) & 1 or tag in header for tag in tags):
        return False
    if any(tag != _TRAILING_PADDING and profile.action_table.action_for(tag) is not Action.X for tag in tags):
        return False
    for tag in tags:
        header[tag] = trailer.get_item(tag)
    try:
        for _ in _walk_tags(header, tags):
            pass
        _check_complete(header, data)
    except Exception:
        for tag in tags:
            del header[tag]
        return False
    return True


_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _check_complete(dataset: Dataset, data: bytes) -> None:
    """The last attribute of the data set must end where the file ends; pydicom silently stops at a header
    that was cut in half, and reads an encapsulated pixel data without its closing delimiter."""
    tags = list(dataset.keys())
    if not tags:
        return
    last = dataset.get_item(tags[-1])
    if not isinstance(last, RawDataElement) or last.value_tell is None:
        return
    if last.length == _UNDEFINED_LENGTH:
        if tags[-1] in _PIXEL_TAGS and isinstance(last.value, bytes):
            end = last.value_tell + len(last.value)
            if data[end : end + 8] != _SEQUENCE_DELIMITER:
                raise InvalidDicomError(f"{_tag_text(tags[-1])}: no closing delimiter: the file is cut short")
        return
    end = last.value_tell + last.length
    if end < len(data):
        raise InvalidDicomError(f"{len(data) - end} bytes after the last complete attribute: the file is cut short")


_UNDEFINED_LENGTH = 0xFFFFFFFF


_KNOWN_VRS = frozenset(vr.value for vr in VR)
_UID_FORM = re.compile(r"[0-9]{1,39}(?:\.[0-9]{1,39}){1,31}")


def _walk_tags(dataset: Dataset, tags: Iterable[int] | None = None) -> Iterator[int]:
    # The elements as stored (raw or converted), without a look-up per tag: this runs over every element read.
    elements = list(dataset.values()) if tags is None else [dataset.get_item(tag) for tag in tags]
    for element in elements:
        tag = element.tag
        if isinstance(element, RawDataElement):
            if (
                element.length != _UNDEFINED_LENGTH
                and isinstance(element.value, bytes)
                and len(element.value) < element.length
            ):
                raise InvalidDicomError(
                    f"{_tag_text(tag)}: {len(element.value)} of its {element.length} bytes present: the file is cut "
                    "short"
                )
            if element.VR is not None and element.VR not in _KNOWN_VRS:
                # Written back as it was read, it would not even take two bytes (a non-ASCII VR is encoded longer)
                raise InvalidDicomError(f"{_tag_text(tag)}: not a value representation of PS3.5: the file is damaged")
            descend = element.VR in ("SQ", None, "UN")
        else:
            descend = element.VR == "SQ"
        if descend:
            try:
                value = dataset[tag].value
            except KeyError:
                continue
            if isinstance(value, Sequence):
                for item in value:
                    yield from _walk_tags(item)
        yield tag


def write_dataset(dataset: Dataset) -> bytes:
    """Serialise ``dataset`` as a DICOM file in its own transfer syntax: the bytes of pydicom's
    ``save_as(enforce_file_format=True)``, with the elements still as read written straight from their bytes."""
    fast = _write_plainly(dataset)
    if fast is not None:
        return fast
    dataset.preamble = OUTPUT_PREAMBLE  # never the input's (see process_file_meta)
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _write_plainly(dataset: Dataset) -> bytes | None:
    """``dcmwrite(enforce_file_format=True)`` for the common case (a public transfer syntax, the data set in the
    encoding and character set it was read in, no Pixel Data left in it), with its element loop
    (:func:`pydicom.filewriter.write_dataset`) writing each unconverted element in one piece instead of through
    :func:`~pydicom.filewriter.write_data_element`; ``None`` for anything else (pydicom then writes it all).
    test_engine_pixel_splice.py compares the two on every pydicom test file."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if (
        meta is None
        or syntax is None
        or syntax.is_private
        or not syntax.is_transfer_syntax
        or syntax.is_deflated
        or _PIXEL_DATA in dataset
    ):
        return None
    encoding = (bool(syntax.is_implicit_VR), bool(syntax.is_little_endian))
    if encoding == (True, False) or encoding != dataset.original_encoding:
        return None
    if dataset.original_character_set != dataset._character_set:
        return None
    keys = sorted(dataset.keys())
    if any(tag >> 16 in (0, 2) for tag in keys):
        return None
    # What dcmwrite does to the file meta with enforce_file_format, on a copy of each element with the encoding the
    # meta was read in (dcmwrite deep-copies the whole meta: ~120 deepcopy calls an instance for 8 elements).
    file_meta = FileMetaDataset()
    for element in meta.values():
        file_meta[element.tag] = copy(element)
    implicit_meta, little_meta = meta.original_encoding
    file_meta.set_original_encoding(implicit_meta, little_meta, meta.original_character_set)
    meta_class = file_meta.get("MediaStorageSOPClassUID", None)
    ds_class = dataset.get("SOPClassUID", None)
    if meta_class is None or (ds_class and ds_class != meta_class):
        file_meta.MediaStorageSOPClassUID = ds_class
    meta_instance = file_meta.get("MediaStorageSOPInstanceUID", None)
    ds_instance = dataset.get("SOPInstanceUID", None)
    if meta_instance is None or (ds_instance and ds_instance != meta_instance):
        file_meta.MediaStorageSOPInstanceUID = ds_instance
    validate_file_meta(file_meta, enforce_standard=True)
    implicit, little = encoding
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    fp.write(OUTPUT_PREAMBLE)
    fp.write(b"DICM")
    write_file_meta_info(fp, file_meta, enforce_standard=True)
    order = "<" if little else ">"
    tag_format, short_format, long_format = order + "HH", order + "H", order + "I"
    charset = dataset.get("SpecificCharacterSet", default_encoding)
    write = fp.write
    for tag in keys:
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        element = dataset.get_item(tag)
        value = element.value
        vr = element.VR
        if (
            isinstance(element, RawDataElement)
            and isinstance(value, bytes)
            and element.length != _UNDEFINED_LENGTH
            and (implicit or (vr is not None and (vr in EXPLICIT_VR_LENGTH_32 or len(value) <= 0xFFFF)))
        ):
            write(struct.pack(tag_format, tag >> 16, tag & 0xFFFF))
            if implicit:
                write(struct.pack(long_format, len(value)))
            elif vr in EXPLICIT_VR_LENGTH_32:
                write(vr.encode() + b"\x00\x00" + struct.pack(long_format, len(value)))
            else:
                write(vr.encode() + struct.pack(short_format, len(value)))
            write(value)
        else:
            with tag_in_exception(Tag(tag)):
                write_data_element(fp, element, charset)
    return fp.getvalue()


def _instance_encodings(dataset: Dataset) -> list[str]:
    """The Python codecs of ``dataset``'s Specific Character Set; the default repertoire is ASCII (PS3.5 6.1.2.1),
    which pydicom reads permissively as ``iso8859``."""
    value = dataset.get("SpecificCharacterSet") or ""
    terms = [value] if isinstance(value, str) else list(value)
    try:
        encodings = convert_encodings(terms or [""])
    except LookupError:
        return ["ascii"]
    return ["ascii" if encoding == default_encoding else encoding for encoding in encodings]


def anonymize_bytes(data: bytes, settings: AnonymizationSettings) -> tuple[bytes, AnonymizationReport]:
    """De-identify the DICOM file ``data``; the pixel data and its encoding pass through untouched unless
    CleanPixelData cleans them.

    Raises :class:`InvalidDicomError` when ``data`` is not DICOM, :class:`AnonymizationError` when it cannot be
    anonymized safely. Runs in any process: bytes and picklable settings in, bytes and a report out.
    """
    instance, report = anonymize_instance_data(data, settings)
    return instance.output_bytes(), report


def anonymize_instance_data(
    data: bytes, settings: AnonymizationSettings, *, record_changes: bool = True
) -> tuple[DicomInstance, AnonymizationReport]:
    """:func:`anonymize_bytes`, leaving the output in pieces (:meth:`DicomInstance.output_parts`) for the caller
    to write without joining them."""
    instance = read_instance(data, settings.profile)
    return instance, anonymize_dataset(instance.dataset, settings, record_changes=record_changes)


def anonymize_file(source: Path, destination: Path, settings: AnonymizationSettings) -> AnonymizationReport:
    """De-identify the file ``source`` into ``destination`` (parent folders are created)."""
    instance, report = anonymize_instance_data(Path(source).read_bytes(), settings)
    parts = instance.output_parts()
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("wb") as output:
        for part in parts:
            output.write(part)
    return report


@lru_cache(maxsize=1)
def _safe_private_index() -> dict[tuple[str, int, int], frozenset[str]]:
    """Table E.3.10-1 as (creator upper-case, group, element low byte) -> the VRs it gives (empty: not given)."""
    index: dict[tuple[str, int, int], frozenset[str]] = {}
    for row in standard.safe_private_rows():
        group, element = row["tag"].split(",")
        key = (row["private_creator"].strip().upper(), int(group, 16), int(element[2:], 16))
        index[key] = index.get(key, frozenset()) | frozenset(vr for vr in row["vr"].split("/") if vr)
    return index


def _safe_vr(table_vrs: frozenset[str] | None, vr: str) -> bool:
    """Whether an element read with ``vr`` is the safe element Table E.3.10-1 lists (``None``: not listed). A
    value of another VR in its place (a name where the vendor writes a number) is not what the table vouches for;
    UN (implicit VR, or a creator pydicom does not know) is what the table lists, read as bytes."""
    return table_vrs is not None and (not table_vrs or vr in table_vrs or vr == "UN")


_TEMPORAL_FORMS = {
    # PS3.5 6.2 (TM also in the ACR-NEMA form with colons, which pydicom reads); values padded with spaces
    "DA": re.compile(r"\d{8}|\d{4}\.\d{2}\.\d{2}"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
    "TM": re.compile(r"\d{2}(:?\d{2}(:?\d{2}(\.\d{1,6})?)?)?"),
}


def _temporal_values_valid(value: Any, vr: str) -> bool:
    """Whether every value of a DA, DT or TM element is empty or has its VR's form."""
    if value is None:
        return True
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    form = _TEMPORAL_FORMS[vr]
    for item in items:
        text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
        text = text.strip(" \x00")
        if text and (len(text) > 26 or not form.fullmatch(text)):
            return False
    return True


# Bytes that never occur in a text value of any character set DICOM allows (ESC, CR, LF, TAB and FF do).
_NOT_TEXT = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_NOT_UID = re.compile(rb"[^0-9.\\ ]")
_CHECKED_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"}
)


def _check_kept_value(dataset: Dataset, tag: int, vr: str) -> None:
    """Refuse an instance whose kept text holds binary bytes: the sign of a damaged length that swallowed the
    following attributes (and whatever identifying values they carried) into this one."""
    if vr != "UI" and vr not in _CHECKED_TEXT_VRS:
        return
    element = dataset.get_item(tag)
    raw = element.value if isinstance(element, RawDataElement) else None
    if raw is None:
        value = dataset[tag].value
        if value is None or isinstance(value, bytes):
            return
        items = value if isinstance(value, MultiValue | list) else [value]
        raw = "\\".join(str(item) for item in items).encode("utf-8", "replace")
    if not isinstance(raw, bytes):
        return
    text = raw.rstrip(b"\x00 ") if vr == "UI" else raw
    if (_NOT_UID if vr == "UI" else _NOT_TEXT).search(text):
        raise AnonymizationError(f"{_tag_text(tag)}: value holds bytes not valid for {vr}; the file looks damaged")


def number_bytes(value: Any, vr: str) -> bytes:
    """The little-endian bytes of a binary number value (as an implicit VR file stored them)."""
    items = value if isinstance(value, MultiValue | list | tuple) else [] if value is None else [value]
    try:
        return struct.pack(f"<{len(items)}{NUMBER_FORMATS[vr]}", *items)
    except (struct.error, TypeError):
        return b""


def _character_set_term(value: str) -> str | None:
    """``value`` as a defined term of Specific Character Set (an empty first value is one too), or ``None``."""
    term = value.strip(" \x00")
    if term == "":
        return ""
    for candidate in (term, re.sub(r"^ISO[ _-]?IR[ _-]?", "ISO_IR ", term.upper()), term.upper().replace("_", " ")):
        if candidate in python_encoding:
            return candidate
    return None


@lru_cache(maxsize=4096)
def _text_where_none_belongs(tag: int, vr: str) -> bool:
    """Whether an element read with ``vr`` (from an explicit VR file) holds a name where its tag's attribute has
    none, or text where its tag's attribute is binary, by pydicom's data dictionary."""
    if vr not in STRING_VRS:
        return False
    try:
        expected = set(str(dictionary_VR(tag)).split(" or "))
    except KeyError:
        return False
    if vr == "PN":
        return "PN" not in expected
    return not expected & STRING_VRS


@lru_cache(maxsize=4096)
def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _is_overlay_data(tag: int) -> bool:
    """Overlay Data (60xx,3000) of a repeating group 6000-601E."""
    return tag & 0xFFFF == 0x3000 and 0x6000 <= tag >> 16 < 0x6020 and not (tag >> 16) & 1


def _known_tag(tag: int) -> bool:
    """Whether pydicom's data dictionary (repeating groups included) names this public tag."""
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True


def _vr_of(dataset: Dataset, tag: int) -> str:
    element = dataset.get_item(tag)
    vr = getattr(element, "VR", None)
    if vr:
        return str(vr)
    try:
        return (
            str(dictionary_VR(tag)).split(" ")[0]
            if dictionary_VR(tag) not in ("OB or OW", "US or SS")
            else str(dataset[tag].VR)
        )
    except KeyError:
        return "UN"


def _patient_key(dataset: Dataset) -> str:
    """What identifies the patient for pseudonyms and date offsets: PatientID with its issuer, else name+birth."""
    patient_id = _text(dataset.get(_PATIENT_ID))
    if patient_id:
        return f"id:{patient_id}\x00{_text(dataset.get(_ISSUER_OF_PATIENT_ID))}"
    return f"name:{_text(dataset.get(_PATIENT_NAME))}\x00{_text(dataset.get(_PATIENT_BIRTH_DATE))}"


def _text(element: DataElement | RawDataElement | None) -> str:
    if element is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    return "" if value is None else str(value).strip()


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 64 else f"<{len(value)} bytes>"
    if isinstance(value, Sequence):
        return f"<{len(value)} items>"
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value)
    return str(value)  # PersonName, str and numbers


def _tag_text(tag: int) -> str:
    return f"{tag >> 16:04X},{tag & 0xFFFF:04X}"
