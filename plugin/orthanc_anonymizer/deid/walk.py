"""The walk over a data set: every element, at every depth of every kept sequence, gets the action the profile's
table or a custom rule names (PS3.15 Annex E), private elements under their creator; then the patient identity,
ages and file meta. :class:`_Walker` holds one anonymization: the compiled table, the keys, the text cleaner and
the report being written."""

from __future__ import annotations

from collections.abc import Iterator, MutableSequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from orthanc_anonymizer.deid import identity, standard
from orthanc_anonymizer.deid.actions import (
    DATE_VRS,
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
from orthanc_anonymizer.deid.elements import (
    BINARY_VRS,
    ITEM_TAG_LE,
    TRAILING_PADDING,
    as_text,
    element_text,
    is_overlay_data,
    is_private_creator,
    keyword_of,
    known_tag,
    tag_text,
    vr_of,
)
from orthanc_anonymizer.deid.profiles import Action, ActionTable, Option
from orthanc_anonymizer.deid.pydicom_private import conversion_encodings, text_encodings
from orthanc_anonymizer.deid.reading import sequence_in_unknown
from orthanc_anonymizer.deid.report import AnonymizationReport, Change
from orthanc_anonymizer.deid.settings import AnonymizationSettings
from orthanc_anonymizer.deid.values import (
    NUMBER,
    NUMBER_FORMATS,
    character_set_term,
    check_kept_value,
    is_leap_year,
    number_bytes,
    temporal_values_valid,
    text_where_none_belongs,
)
from orthanc_anonymizer.deid.writing import rebuild_file_meta
from orthanc_anonymizer.errors import AnonymizationError

_PATIENT_NAME = 0x00100010
_PATIENT_ID = 0x00100020
_ISSUER_OF_PATIENT_ID = 0x00100021
_PATIENT_BIRTH_DATE = 0x00100030
_PATIENT_AGE = 0x00101010
_AGE_REFERENCE_DATES = (0x00080020, 0x00080021, 0x00080022, 0x00080023)
"""Study, Series, Acquisition and Content Date: the first present is the date an age is counted at."""
_SOP_CLASS_UID = 0x00080016
_SPECIFIC_CHARACTER_SET = 0x00080005
_SPECIFIC_CHARACTER_SET_PARTS = (0x0008, 0x0005)
_TRAILING_PADDING = (TRAILING_PADDING >> 16, TRAILING_PADDING & 0xFFFF)
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_DUMMIED_VRS = frozenset({"UT", "LT", "ST", "UC", "PN", "DA", "DT"})
_CODE_VRS = frozenset({"CS", "AE"})
_TOKEN_VRS = frozenset({"PN", "LO", "SH", "AE", "UC", "CS", "DA", "DT"})


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


@dataclass(frozen=True)
class _Unconverted:
    """An element of pass 1 left as read (explicit VR): converted as ``dataset[tag]`` would have converted it then,
    when the cleaner is first needed, even if pass 2 has removed or replaced it by then (a read element does not
    change)."""

    raw: RawDataElement
    dataset: Dataset
    encodings: str | MutableSequence[str]

    def convert(self) -> Any:
        return convert_raw_data_element(self.raw, encoding=self.encodings, ds=self.dataset).value


class _Walker:
    """One anonymization: the compiled table, the keys, the cleaner, and the report being written."""

    def __init__(self, dataset: Dataset, settings: AnonymizationSettings, record_changes: bool = True) -> None:
        self.settings = settings
        self.record_changes = record_changes
        self.profile = settings.profile
        self.table: ActionTable = settings.profile.action_table
        self.private_rule = self.table.private_action.value
        """What a private attribute no rule names is reported under (the table's row for them)."""
        # Date offsets belong to the patient in the project; UIDs and pseudonyms also to the identity the caller
        # chose, so two copies of one study under two chosen identities are two studies, not one study under two
        # patients, and a copy given only a name shares no derived PatientID with a copy given another name.
        self.hasher = settings.hasher.scoped(settings.project)
        self.copy_hasher = settings.hasher.scoped(settings.project, settings.patient_name, settings.patient_id)
        self.report = AnonymizationReport()
        self.options = settings.profile.options
        sop_class = element_text(dataset.get(_SOP_CLASS_UID))
        self.report.sop_class_uid = sop_class
        self.types = standard.attribute_types_for_sop_class(sop_class)
        self.patient_key = _patient_key(dataset)
        self.date_offset = self.hasher.date_offset_days(self.patient_key)
        self.safe_private = _safe_private_index()
        self.directory = sop_class == _MEDIA_STORAGE_DIRECTORY
        self._changing: list[tuple[str, Any]] = []
        """Pass 1's values: (VR, value), the value a :class:`_Unconverted` where it was left as read."""
        self._cleaner: TextCleaner | None = None

    # -- pass 1: what is identifying in this instance (for C, and for the residual check) --------------------

    def collect_identifying(self, dataset: Dataset) -> None:
        """Gather the names, IDs and dates that the profile removes, to clean them out of kept free text (C) and
        out of the codes and labels of sequences kept under D.

        Values are read only from the text-like attributes that are about to be removed or replaced, so the rest
        of the header is never converted; and those still as read are converted only once some text is cleaned
        (:attr:`cleaner`): most instances have none, and pass 2 removes them unread.
        """
        self._changing = list(self._changing_values(dataset))
        self._cleaner = None

    @property
    def cleaner(self) -> TextCleaner:
        """The cleaner of the values pass 1 gathered, made on first use."""
        if self._cleaner is None:
            self._cleaner = self._make_cleaner()
        return self._cleaner

    def _make_cleaner(self) -> TextCleaner:
        tokens: set[Token] = set()
        removed_dates: set[str] = set()
        for vr, stored in self._changing:
            try:
                value = stored.convert() if isinstance(stored, _Unconverted) else stored
            except Exception:
                continue  # unreadable: no value to look for, as in _changing_values
            for item in value if isinstance(value, MultiValue | list) else [value]:
                if item is None or not str(item).strip():
                    continue
                tokens |= identifying_tokens(vr, str(item))
                if vr in DATE_VRS:
                    removed_dates.add(str(item).strip()[:8])
        # Dates written in kept text go the way of the date attributes: shifted by the same offset, kept, or removed.
        dates: DateMode
        if Option.RetainLongModifDates in self.options:
            dates = "shift"
        elif Option.RetainLongFullDates in self.options:
            dates = "keep"
        else:
            dates = "remove"
        return TextCleaner(tokens, dates, self.date_offset, self.profile.age_cap, removed_dates)

    def _changing_values(self, dataset: Dataset) -> Iterator[tuple[str, Any]]:
        for stored in list(dataset.values()):  # as stored: the VR read, without a look-up per tag
            tag = stored.tag
            if tag >> 16 & 1:
                continue  # private values are vendor data; names in them are found through the standard tags
            deferred = isinstance(stored, RawDataElement) and stored.value is None  # read (and converted) by vr_of
            vr = str(stored.VR) if stored.VR and not deferred else vr_of(dataset, tag)
            if vr == "SQ":
                for item in dataset[tag].value or []:
                    yield from self._changing_values(item)
                continue
            if vr not in _TOKEN_VRS:
                continue
            action = self.table.action_for(tag)
            if action is None or action in (Action.K, Action.C, Action.U):
                continue
            if isinstance(stored, RawDataElement) and not deferred and stored.VR:
                yield vr, _Unconverted(stored, dataset, conversion_encodings(dataset))
                continue
            try:
                value = dataset[tag].value
            except Exception:
                continue  # unreadable: no value to look for (pass 2 removes or replaces it)
            yield vr, value

    # -- pass 2: apply the actions ---------------------------------------------------------------------------

    def process(self, dataset: Dataset, path: str, keywords: tuple[str, ...], cleaning: ItemCleaning) -> None:
        private_kept_blocks: set[BaseTag] = set()
        """The private creator tags of the blocks some element of which stays."""
        private_creators: list[BaseTag] = []
        for tag in list(dataset.keys()):
            # Plain int arithmetic and comparisons: a BaseTag's == converts the other side to a Tag, and its
            # is_private... properties are a call each.
            group, elem = tag >> 16, tag & 0xFFFF  # structure: group lengths, command set, meta, directory
            if (
                (elem == 0x0000 and group != 0x0002)
                or group == 0x0000
                or (group, elem) == _TRAILING_PADDING
                or (group == 0x0002 and path)
                or (group == 0x0004 and not self.directory and self.table.action_for(tag) is None)
            ):
                # Group lengths go stale once attributes change (they are retired anyway); command set
                # elements do not belong in a stored instance and pydicom cannot write them; trailing padding
                # is bytes outside the meaning of the data set, whatever a rule says. File meta elements in an
                # item, and directory elements (group 0004) the table does not name outside a DICOMDIR, belong to no attribute of the
                # instance: copied, their values (AE titles, file-set IDs, file names) went out unchecked.
                self.record(path, tag, keyword="", rule="X", action="X", changed=True)
                del dataset[tag]
                continue
            if (group, elem) == _SPECIFIC_CHARACTER_SET_PARTS:
                self._keep_known_character_sets(dataset, path)
            if group & 1:  # private
                if is_private_creator(tag):
                    private_creators.append(tag)
                    continue
                if self._process_private(dataset, tag, path, keywords, cleaning):
                    private_kept_blocks.add(tag.private_creator)
                continue
            self._process_element(dataset, tag, path, keywords, cleaning)
        if not path:
            self._drop_overlays_without_data(dataset)
        for creator_tag in private_creators:
            rule = self.table.rule_for(creator_tag)
            keep = rule in (Action.K, Action.C) if rule is not None else creator_tag in private_kept_blocks
            if not keep:
                self.record(
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
        kept = [term for term in (character_set_term(item) for item in values) if term is not None]
        if kept == values:
            return
        self.report.warnings.append(f"{tag_text(_SPECIFIC_CHARACTER_SET)}: unknown character set terms removed")
        self.record(path, _SPECIFIC_CHARACTER_SET, keyword="SpecificCharacterSet", rule="K", action="C", changed=True)
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
            if 0x6000 <= key.group < 0x6020 and not key.is_private:
                by_group.setdefault(key.group, []).append(int(key))
        for group, leftovers in sorted(by_group.items()):
            if (group << 16 | 0x3000) in dataset:
                continue
            if self.table.action_for(group << 16 | 0x3000) not in (Action.X, Action.C):
                continue
            for tag in leftovers:
                self.record("", tag, keyword=keyword_for_tag(tag), rule="X", action="X", changed=True)
                del dataset[tag]

    def _process_private(
        self, dataset: Dataset, tag: BaseTag, path: str, keywords: tuple[str, ...], cleaning: ItemCleaning
    ) -> bool:
        """Apply the rule for one private attribute; ``True`` if it stays in the output."""
        rule = self.table.rule_for(tag) if self.table.rules else None
        if rule is None:
            action = self.table.private_action
            if action is Action.C:  # RetainSafePrivate: keep exactly Table E.3.10-1's elements of this creator
                creator = element_text(dataset.get(tag.private_creator))
                key = (creator.strip().upper(), tag.group, tag.element & 0xFF)  # the element's offset in its block
                vr = vr_of(dataset, tag)
                table_vrs = self.safe_private.get(key)
                if _safe_vr(table_vrs, vr):
                    if self.keep_container(dataset, tag, vr, path, keywords, "", cleaning):
                        self.record(path, tag, keyword="", rule="C", action="K", changed=False)
                        return True
                    if tag in dataset and (table_vrs is None or "SQ" not in table_vrs):
                        if self._clean_safe_private(dataset, tag, vr, table_vrs or frozenset()):
                            check_kept_value(dataset, tag, vr_of(dataset, tag))
                            self.record(path, tag, keyword="", rule="C", action="K", changed=False)
                            return True
                        self.record(path, tag, keyword="", rule="C", action="X", changed=True)
                        return False
                    # A sequence by the table, bytes that are none (UN): nobody can say what they hold.
                    if tag not in dataset:
                        self.record(path, tag, keyword="", rule="C", action="X", changed=True)
                        return False
                action = Action.X
            self.record(path, tag, keyword="", rule=self.private_rule, action="X", changed=True)
            del dataset[tag]
            return False
        self._process_element(dataset, tag, path, keywords, cleaning, action=rule, private=True)
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
        if vr in ("DS", "IS") and not all(NUMBER.fullmatch(text.strip()) for text in texts if text.strip()):
            del dataset[tag]
            return False
        if any(self.cleaner.finds(text) for text in texts):
            del dataset[tag]
            return False
        return True

    def _process_element(
        self,
        dataset: Dataset,
        tag: BaseTag,
        path: str,
        keywords: tuple[str, ...],
        cleaning: ItemCleaning,
        action: Action | None = None,
        private: bool = False,
    ) -> None:
        """Apply ``action`` (default: the table's) to one attribute; ``private``: a private one a custom rule names
        (the caller knows, from :attr:`~pydicom.tag.BaseTag.is_private`)."""
        rule = action if action is not None else self.table.action_for(tag)
        vr = vr_of(dataset, tag)
        keyword = "" if private else keyword_of(int(tag))
        if rule is None and not known_tag(int(tag)):
            # Neither the table nor the data dictionary knows it (newer than the dictionary, or a damaged
            # length that made bytes look like a tag): nobody can say it is harmless, so it goes.
            self.record(path, tag, keyword=keyword, rule="unknown", action="X", changed=True)
            del dataset[tag]
            return
        if rule is None and vr != "SQ" and text_where_none_belongs(int(tag), vr):
            # A name, or text, under a tag the dictionary gives a binary VR (a damaged tag, or a misuse): kept as
            # the table would keep that attribute, it would carry text nobody has checked.
            self.record(path, tag, keyword=keyword, rule="vr-mismatch", action="X", changed=True)
            del dataset[tag]
            return
        if rule is None:
            if self.keep_container(dataset, tag, vr, path, keywords, keyword, cleaning):
                pass
            elif tag not in dataset:
                self.record(path, tag, keyword=keyword, rule="unknown", action="X", changed=True)
            elif cleaning is not ItemCleaning.TABLE:
                self._clean_untabled(dataset, tag, vr, path, cleaning)
            else:
                check_kept_value(dataset, tag, vr)
            return
        resolved = rule
        if rule.is_compound:
            attribute_type = self.types.get("/".join((*keywords, keyword))) if self.types is not None else None
            resolved = resolve_compound(rule, attribute_type, self.types is not None)
        if resolved is Action.C and is_overlay_data(tag):
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
            self.report.warnings.append(f"{tag_text(tag)}: unreadable value removed ({type(error).__name__})")
            self.record(path, tag, keyword=keyword, rule=rule.value, action="X", changed=True)

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
            self.record(path, tag, keyword=keyword, rule=rule.value, action="X", changed=True, dataset=dataset)
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
            self.record(path, tag, keyword=keyword, rule=rule.value, action="X", changed=True)
            return
        element = dataset[tag]
        before = element.value
        if vr == "SQ":  # kept sequences went to keep_container: this one is emptied (Z)
            self.record(path, tag, keyword=keyword, rule=rule.value, action="Z", changed=bool(before), dataset=dataset)
            element.value = Sequence()
            return
        if action is Action.K:
            check_kept_value(dataset, tag, vr)
            self.record(path, tag, keyword=keyword, rule=rule.value, action="K", changed=False)
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
        if vr in BINARY_VRS and vr != "UN" and isinstance(new, str | list):
            # New UIDs (U) for a UID read under OB, OW...: written as the UI element it should have been (as bytes
            # under that VR they could not be written at all: the file was refused, naming nothing). UN, which holds
            # any value, keeps them as bytes (above).
            element = dataset[tag] = DataElement(tag, "UI", new)
        else:
            element.value = new
        changed = as_text(before) != as_text(element.value)
        self.record(
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
        (:func:`vr_of`), so that no other element is converted here. ``record``: the (rule, action) to report for
        the sequence itself.
        """
        if vr not in ("SQ", "UN") or not self._open_unknown_sequence(dataset, tag):
            return False
        if record is not None:
            self.record(path, tag, keyword=keyword, rule=record[0], action=record[1], changed=False)
        for index, item in enumerate(dataset[tag].value or []):
            self.process(item, f"{path}{tag_text(tag)}[{index}]/", (*keywords, keyword), cleaning)
        return True

    @staticmethod
    def _open_unknown_sequence(dataset: Dataset, tag: int) -> bool:
        """Whether ``tag`` is a sequence, once a UN value holding one is read into items."""
        element = dataset[tag]
        if element.VR == "SQ":
            return True
        if element.VR != "UN" or not isinstance(element.value, bytes) or not element.value.startswith(ITEM_TAG_LE):
            return False
        sequence = sequence_in_unknown(element.value, text_encodings(dataset))
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
                if temporal_values_valid(value, vr):
                    return value, "K"
                # Not a date or time (a damaged length reads the next attributes into it): not kept as it is
                self.report.warnings.append(f"{tag_text(tag)}: value not a valid {vr}, replaced by a dummy")
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
                self.report.warnings.append(f"{tag_text(tag)}: unparsable date emptied")
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
        changed = as_text(before) != as_text(element.value)
        if changed:
            self.record(
                path,
                tag,
                keyword=keyword_for_tag(tag),
                rule=mode.value,
                action=label,
                changed=True,
                original=before,
                new=element.value,
            )

    def record(
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
        text = tag_text(tag)
        if self.settings.record_values:
            if dataset is not None and original is None and tag in dataset:
                try:
                    original = dataset[tag].value
                except Exception:
                    original = None
            self.report.changes.append(
                Change(f"{path}{text}", text, keyword, rule, action, changed, as_text(original), as_text(new))
            )
        else:
            self.report.changes.append(Change(f"{path}{text}", text, keyword, rule, action, changed))

    # -- after the walk: patient identity, ages, file meta ------------------------------------------------------

    def set_patient_identity(self, dataset: Dataset) -> None:
        for tag, chosen, derive, vr in (
            (_PATIENT_NAME, self.settings.patient_name, self.copy_hasher.patient_name, "PN"),
            (_PATIENT_ID, self.settings.patient_id, self.copy_hasher.patient_id, "LO"),
        ):
            if chosen is None and self.table.rule_for(tag) is not None:
                continue  # a custom rule for it is the last word: the walk applied it (Z empty, D dummy, K kept...)
            if chosen is not None and not identity.encodable(chosen, _instance_encodings(dataset)):
                raise AnonymizationError(
                    f"{tag_text(tag)} {keyword_for_tag(tag)}: the chosen value has characters the instance's "
                    "Specific Character Set (0008,0005) cannot hold"
                )
            value = chosen if chosen is not None else derive(self.patient_key)
            before = element_text(dataset.get(tag)) if tag in dataset else None
            dataset.add_new(tag, vr, value)
            self.record(
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
        text = element_text(age)
        if text.endswith("Y") and text[:-1].isdigit() and int(text[:-1]) >= cap:
            capped = f"{cap:03d}Y"
            dataset[_PATIENT_AGE].value = capped
            self.record(
                "",
                _PATIENT_AGE,
                keyword="PatientAge",
                rule="AgeCap",
                action="C",
                changed=text != capped,
                original=text,
                new=capped,
            )
        birth = element_text(dataset.get(_PATIENT_BIRTH_DATE))
        reference = next(
            (element_text(dataset.get(tag)) for tag in _AGE_REFERENCE_DATES if element_text(dataset.get(tag))), ""
        )
        if len(birth) < 8 or len(reference) < 8 or not (birth[:8] + reference[:8]).isdigit():
            return
        born, then = int(birth[:8]), int(reference[:8])
        if (then - born) // 10000 < cap:  # YYYYMMDD differences: whole years of age
            return
        # The same month and day, cap years before the reference date (29 February into a year without one: the 28th)
        year, month, day = then // 10000 - cap, then // 100 % 100, then % 100
        moved = f"{year:04d}{month:02d}{day if day <= 28 or month != 2 or is_leap_year(year) else 28:02d}"
        dataset[_PATIENT_BIRTH_DATE].value = moved
        self.record(
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
        """Rebuild the file meta and zero the preamble (:func:`.writing.rebuild_file_meta`), reporting what
        happens to each element of the input's meta."""

        def record_meta(tag: int, action: str, meta: Dataset) -> None:
            self.record(
                "", tag, keyword=keyword_for_tag(tag), rule="meta", action=action, changed=action != "K", dataset=meta
            )

        rebuild_file_meta(dataset, self.copy_hasher.uid, record_meta)


def _container_mode(action: Action, cleaning: ItemCleaning) -> ItemCleaning:
    """How the items of a sequence kept by ``action`` are walked, inside items walked under ``cleaning``."""
    if action is Action.D or cleaning is ItemCleaning.DUMMY:
        return ItemCleaning.DUMMY
    if action is Action.C or cleaning is not ItemCleaning.TABLE:
        return ItemCleaning.CLEAN
    return ItemCleaning.TABLE


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


def _patient_key(dataset: Dataset) -> str:
    """What identifies the patient for pseudonyms and date offsets: PatientID with its issuer, else name+birth."""
    patient_id = element_text(dataset.get(_PATIENT_ID))
    if patient_id:
        return f"id:{patient_id}\x00{element_text(dataset.get(_ISSUER_OF_PATIENT_ID))}"
    return f"name:{element_text(dataset.get(_PATIENT_NAME))}\x00{element_text(dataset.get(_PATIENT_BIRTH_DATE))}"
