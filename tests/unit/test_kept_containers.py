"""Kept containers (issue 14, item 2): whatever keeps a sequence, every element inside it still gets its own action.

A marker (a Patient's Name, an Institution Name, an unsafe private element, a private element that would be safe
under another creator or under the creator of the enclosing data set only) is planted at each depth (1 to 4) of each kind of kept container: a safe private sequence
under RetainSafePrivate, a K rule on a sequence, a sequence an option keeps, the Content Sequence (D by the table,
C under CleanStructdCont, D by a rule), a sequence the table does not name, and a private sequence kept by a rule
and written as UN. Under Basic and under the options that keep the most, the marker is in none of the output's
bytes, in any encoding it could take. With the walk into kept containers switched off, the same test finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from orthanc_anonymizer.deid import walk
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profile_files import parse_rules
from orthanc_anonymizer.deid.profiles import Option, Profile, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import verify_bytes

PHILIPS = "Philips Imaging DD 001"
STACK_SEQUENCE = 0x5F  # (2001,xx5F) Stack Sequence: a safe private sequence of Table E.3.10-1
SAFE_PHILIPS_SH = 0x25  # (2001,xx25) SH: safe under Philips Imaging DD 001, not under OTHER VENDOR 7
UNSAFE_PHILIPS = 0x00  # (2001,xx00): not in Table E.3.10-1 for Philips Imaging DD 001
ACME = "ACME MARKER 1.0"

# The options that keep the most (RetainInstitutionIdent aside: it keeps Institution Name by design;
# RetainLongModifDates excludes RetainLongFullDates, CleanPixelData keeps nothing).
MOST = frozenset(Option) - {Option.RetainInstitutionIdent, Option.RetainLongModifDates, Option.CleanPixelData}


@dataclass(frozen=True)
class Container:
    """A kind of kept sequence: its tag, the creator its block needs (private ones), what keeps it."""

    name: str
    tag: int
    options: frozenset[Option] = frozenset()
    rules: str = ""
    creator: str = ""
    as_un: bool = False
    """Written as UN with a defined length (explicit VR): the engine must read the items itself."""
    sop_class: str = ""
    """Another SOP Class UID for the instance (a private one: compound codes resolve to keep)."""


CONTAINERS = [
    Container("safe-private", 0x20010000 | 0x1000 | STACK_SEQUENCE, frozenset({Option.RetainSafePrivate}), "", PHILIPS),
    Container("k-rule", 0x00400275, rules="0040,0275;K\n"),  # Request Attributes Sequence: X by the table
    Container("option-kept", 0x00081140, frozenset({Option.RetainUIDs})),  # Referenced Image Sequence: K
    Container("content-table-d", 0x0040A730),  # Content Sequence: D by the table
    Container("content-clean", 0x0040A730, frozenset({Option.CleanStructdCont})),  # Content Sequence: C
    Container("content-d-rule", 0x0040A730, rules="0040,A730;D\n"),
    Container("untabled", 0x00081115),  # Referenced Series Sequence: not in Table E.1-1, kept
    Container("k-rule-private-un", 0x00111010, rules="0011,1010;K\n", creator=ACME, as_un=True),
    # Referenced Image Sequence, X/Z/U* by the table: kept with its UIDs replaced where the IOD is unknown.
    Container("compound-kept", 0x00081140, sop_class="1.2.826.0.1.3680043.2.1125.99.1"),
]


def _private_block(item: Dataset, group: int, creator: str, block: int = 0x10) -> None:
    item.add_new((group << 16) | block, "LO", creator)


@dataclass(frozen=True)
class Marker:
    name: str
    plant: Callable[[Dataset, str], None]


def _patient_name(item: Dataset, word: str) -> None:
    item.PatientName = f"{word}^{word}given"


def _institution(item: Dataset, word: str) -> None:
    item.InstitutionName = f"{word} hospital"


def _unsafe_private(item: Dataset, word: str) -> None:
    _private_block(item, 0x2001, PHILIPS)
    item.add_new(0x20011000 | UNSAFE_PHILIPS, "LO", word)


def _other_creator(item: Dataset, word: str) -> None:
    # The element number that Philips' block makes safe, in a block of another creator: not safe there.
    _private_block(item, 0x2001, "OTHER VENDOR 7", 0x11)
    item.add_new(0x20011100 | SAFE_PHILIPS_SH, "SH", word)


def _creator_outside(item: Dataset, word: str) -> None:
    # Safe under Philips' block, but the item reserves no block: the creator of the enclosing data set does not
    # count (PS3.5 7.8.1: a private creator reserves its block in its own item).
    item.add_new(0x20011000 | SAFE_PHILIPS_SH, "SH", word)


MARKERS = [
    Marker("patient-name", _patient_name),
    Marker("institution-name", _institution),
    Marker("unsafe-private", _unsafe_private),
    Marker("other-creator", _other_creator),
    Marker("creator-outside", _creator_outside),
]


def _implicit_items(items: Sequence) -> bytes:
    """The items of a sequence as PS3.5 6.2.2 encodes a UN sequence: implicit VR little endian, defined lengths."""
    out = b""
    for item in items:
        stream = DicomBytesIO()
        stream.is_little_endian, stream.is_implicit_VR = True, True
        write_dataset(stream, item)
        body = stream.getvalue()
        out += b"\xfe\xff\x00\xe0" + len(body).to_bytes(4, "little") + body
    return out


def planted_file(container: Container, marker: Marker, depth: int, word: str, charset: str, implicit: bool) -> bytes:
    """CT_small with ``marker`` at ``depth`` (1: in an item of the outermost container) of nested ``container``s."""
    inner = Dataset()
    marker.plant(inner, word)
    for level in range(depth):
        holder = Dataset() if level < depth - 1 else dcmread(get_testdata_file("CT_small.dcm"))
        if container.creator:
            _private_block(holder, container.tag >> 16, container.creator)
        holder.add_new(container.tag, "SQ", Sequence([inner]))
        inner = holder
    dataset = inner
    dataset.SpecificCharacterSet = charset
    if container.sop_class:
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = container.sop_class
    if container.as_un:
        items = dataset[container.tag].value
        dataset.add_new(container.tag, "UN", _implicit_items(items))
    syntax = ImplicitVRLittleEndian if implicit and not container.as_un else ExplicitVRLittleEndian
    dataset.file_meta.TransferSyntaxUID = syntax
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True, implicit_vr=syntax.is_implicit_VR, little_endian=True)
    return buffer.getvalue()


def profile_for(container: Container, options: frozenset[Option]) -> Profile:
    profile = basic_profile(options | container.options)
    if container.rules:
        profile = profile.with_rules(parse_rules(container.rules, "csv", container.name))
    return profile


ENCODINGS = ("ascii", "latin-1", "utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def found_in(output: bytes, word: str) -> list[str]:
    """The encodings (and case) in which ``word`` occurs in ``output``."""
    hits = []
    for variant in {word, word.upper(), word.lower()}:
        for encoding in ENCODINGS:
            try:
                encoded = variant.encode(encoding)
            except UnicodeEncodeError:
                continue
            if encoded in output:
                hits.append(f"{encoding}:{variant}")
    return hits


SECRET = KeyedHasher(b"kept containers secret")


def anonymize(data: bytes, profile: Profile) -> bytes:
    return anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=SECRET))[0]


@pytest.mark.parametrize("options", [frozenset(), MOST], ids=["basic", "most"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("marker", MARKERS, ids=lambda marker: marker.name)
@pytest.mark.parametrize("container", CONTAINERS, ids=lambda container: container.name)
def test_a_marker_at_any_depth_of_any_kept_container_is_gone(
    container: Container, marker: Marker, depth: int, options: frozenset[Option]
) -> None:
    data = planted_file(container, marker, depth, "Quillmarker", "ISO_IR 100", implicit=False)
    assert found_in(data, "Quillmarker")
    output = anonymize(data, profile_for(container, options))
    assert found_in(output, "Quillmarker") == []
    # The container itself is kept (else the test would prove nothing about kept containers).
    kept = dcmread(BytesIO(output))
    assert container.tag in kept and len(kept[container.tag].value) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    container=st.sampled_from(CONTAINERS),
    marker=st.sampled_from(MARKERS),
    depth=st.integers(1, 4),
    options=st.sampled_from([frozenset(), MOST]),
    word=st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzéøüÆ"), min_size=6, max_size=12).map(
        lambda text: "Q" + text
    ),
    charset=st.sampled_from(["ISO_IR 100", "ISO_IR 192"]),
    implicit=st.booleans(),
)
def test_planted_values_in_any_charset_and_syntax_are_gone(
    container: Container,
    marker: Marker,
    depth: int,
    options: frozenset[Option],
    word: str,
    charset: str,
    implicit: bool,
) -> None:
    data = planted_file(container, marker, depth, word, charset, implicit)
    assert found_in(data, word)
    assert found_in(anonymize(data, profile_for(container, options)), word) == []


def _keep_without_walking(self: object, dataset: Dataset, tag: int, *args: object, **kwargs: object) -> bool:
    """The engine before the fix: a kept sequence stays with its items as they are."""
    return bool(dataset[tag].VR == "SQ")


@pytest.mark.parametrize("container", CONTAINERS, ids=lambda container: container.name)
def test_with_the_walk_switched_off_the_planting_test_finds_the_marker(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = planted_file(container, MARKERS[0], 2, "Quillmarker", "ISO_IR 100", implicit=False)
    profile = profile_for(container, frozenset())
    monkeypatch.setattr(walk._Walker, "keep_container", _keep_without_walking)
    output = anonymize(data, profile)
    assert found_in(output, "Quillmarker")
    # The residual check names where: the patient's name, found inside the container.
    report = verify_bytes(data, output, profile)
    assert not report.clean
    assert any(leak.path.startswith(f"{container.tag >> 16:04X},") for leak in report.leaks)


def test_a_safe_private_slot_holding_text_of_another_vr_is_removed() -> None:
    """Table E.3.10-1 vouches for (2001,xx01) as a number; a name written there in its place is not kept."""
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    _private_block(dataset, 0x2001, PHILIPS)
    dataset.add_new(0x20011001, "LO", "Quillmarker")  # FL in the table
    dataset.add_new(0x20011025, "SH", "safe text")  # SH in the table: kept
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    output = anonymize(buffer.getvalue(), basic_profile([Option.RetainSafePrivate]))
    assert found_in(output, "Quillmarker") == []
    kept = dcmread(BytesIO(output))
    assert kept[0x20011025].value == "safe text"


def test_a_un_value_that_begins_like_a_sequence_but_is_none_is_removed() -> None:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    _private_block(dataset, 0x0011, ACME)
    dataset.add_new(0x00111010, "UN", b"\xfe\xff\x00\xe0\xff\x00\x00\x00Quillmarker!")
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    output = anonymize(buffer.getvalue(), basic_profile().with_rules(parse_rules("0011,1010;K\n", "csv", "t")))
    assert found_in(output, "Quillmarker") == []
    assert 0x00111010 not in dcmread(BytesIO(output))


def test_a_safe_private_sequence_slot_holding_bytes_that_are_no_sequence_is_removed() -> None:
    """(2001,xx01) of Philips Imaging DD 097 is a sequence in Table E.3.10-1 that pydicom's dictionary does not know;
    written as UN holding text, it is not what the table vouches for. (Under a creator pydicom knows, pydicom reads
    such bytes as the sequence they should be, and the file is refused as damaged.)"""
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    _private_block(dataset, 0x2001, "Philips Imaging DD 097")
    dataset.add_new(0x20011001, "UN", b"Quillmarker^Name")
    dataset.add_new(0x20011005, "UN", _implicit_items(Sequence([Dataset()])))  # a sequence: kept
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    output = anonymize(buffer.getvalue(), basic_profile([Option.RetainSafePrivate]))
    assert found_in(output, "Quillmarker") == []
    kept = dcmread(BytesIO(output))
    assert 0x20011001 not in kept and kept[0x20011005].VR == "SQ"
