"""The residual-PHI check: a privacy officer plants the original's identifying values in an anonymized output and
expects each to be found, located by tag path and traced to its source attribute, without the value ever being
reported; and a clean output must come back clean."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import Profile, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import ResidualPhiReport, find_residual_phi, verify_bytes

SECRET = b"verify test secret"
FAMILY = "Vanderberg"
GIVEN = "Jonathan"
PATIENT_ID = "PID-7730021"
ACCESSION = "ACC99120047"
STUDY_DATE = "19990312"


def to_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def read(data: bytes) -> Dataset:
    return dcmread(BytesIO(data))


@pytest.fixture(scope="module")
def original_bytes() -> bytes:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = f"{FAMILY}^{GIVEN}"
    ds.PatientID = PATIENT_ID
    ds.AccessionNumber = ACCESSION
    ds.StudyDate = STUDY_DATE
    ds.InstitutionName = "Springfield General Hospital"
    return to_bytes(ds)


def anonymized(original: bytes, profile: Profile) -> bytes:
    settings = AnonymizationSettings(profile=profile, hasher=KeyedHasher(SECRET))
    return anonymize_bytes(original, settings)[0]


@pytest.fixture(scope="module")
def output_bytes(original_bytes: bytes) -> bytes:
    return anonymized(original_bytes, basic_profile())


def check(original_bytes: bytes, output: Dataset, profile: Profile | None = None) -> ResidualPhiReport:
    return find_residual_phi(read(original_bytes), output, profile or basic_profile())


def sources_by_path(report: ResidualPhiReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for leak in report.leaks:
        found.setdefault(leak.path, set()).add(leak.source)
    return found


def test_the_engines_output_of_a_real_file_is_clean(original_bytes: bytes, output_bytes: bytes) -> None:
    report = verify_bytes(original_bytes, output_bytes, basic_profile())
    assert report.clean, [leak.describe() for leak in report.leaks]
    # Name components, IDs, the date, UIDs, the institution: all were looked for.
    assert report.checked_values >= 8


def test_a_copy_anonymized_again_is_clean(output_bytes: bytes) -> None:
    # The copy's meta holds the engine's own Implementation Class UID and Version Name, which the second output holds
    # too: values of the engine, not of a patient.
    profile = basic_profile(["CleanDesc"])
    report = verify_bytes(output_bytes, anonymized(output_bytes, profile), profile)
    assert report.clean, [leak.describe() for leak in report.leaks]


def test_another_implementations_name_put_back_into_the_meta_is_found(
    original_bytes: bytes, output_bytes: bytes
) -> None:
    original, output = read(original_bytes), read(output_bytes)
    original.file_meta.ImplementationVersionName = output.file_meta.ImplementationVersionName = "SCANNER_V99"
    assert "0002,0013" in {leak.source for leak in find_residual_phi(original, output, basic_profile()).leaks}


def test_the_unanonymized_original_leaks_everything(original_bytes: bytes) -> None:
    report = check(original_bytes, read(original_bytes))
    found = sources_by_path(report)
    assert found["0010,0010"] == {"0010,0010"}
    assert found["0010,0020"] == {"0010,0020"}
    assert found["0008,0050"] == {"0008,0050"}
    assert found["0008,0020"] == {"0008,0020"}
    assert found["0020,000D"] == {"0020,000D"}
    assert found["0002,0003"] == {"0008,0018"}  # the file meta copy of SOPInstanceUID
    assert not report.clean


def test_patient_name_copied_into_image_comments_is_found(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    output.ImageComments = f"Reviewed for {FAMILY.upper()}, {GIVEN.lower()} by radiology"
    report = check(original_bytes, output)
    assert sources_by_path(report) == {"0020,4000": {"0010,0010"}}
    (leak,) = report.leaks
    assert (leak.tag, leak.source_keyword, leak.kind) == ("0020,4000", "PatientName", "name")


def test_family_name_alone_in_a_private_element_is_found(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    block = output.private_block(0x0029, "ACME RESEARCH", create=True)
    block.add_new(0x10, "LO", f"case of mr {FAMILY.lower()}")
    report = check(original_bytes, read(to_bytes(output)))
    assert sources_by_path(report) == {"0029,1010": {"0010,0010"}}


def test_patient_id_in_a_nested_sequence_item_is_found(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    inner = Dataset()
    inner.TextValue = f"requested under {PATIENT_ID}"
    outer = Dataset()
    outer.ContentSequence = Sequence([inner])
    output.ReferencedStudySequence = Sequence([Dataset(), outer])
    report = check(original_bytes, read(to_bytes(output)))
    assert sources_by_path(report) == {"0008,1110[1]/0040,A730[0]/0040,A160": {"0010,0020"}}


def test_values_in_unknown_vr_bytes_are_found(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    payload = f"\x01\x02{FAMILY}^{GIVEN}\x00acc={ACCESSION}\x00".encode("latin-1")
    output.add(DataElement(0x00431001, "UN", payload))  # an unknown private element, stored as UN
    output.add(DataElement(0x00431002, "OB", b"\x00\x00" + STUDY_DATE.encode() + b"\x00\x00"))
    report = check(original_bytes, read(to_bytes(output)))
    assert sources_by_path(report) == {"0043,1001": {"0010,0010", "0008,0050"}, "0043,1002": {"0008,0020"}}


def test_original_uid_put_back_into_the_file_meta_is_found(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    output.file_meta.MediaStorageSOPInstanceUID = read(original_bytes).SOPInstanceUID
    report = check(original_bytes, output)
    assert sources_by_path(report) == {"0002,0003": {"0008,0018"}}


def test_a_date_is_found_as_a_whole_date_not_inside_a_longer_number(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    output.AcquisitionDateTime = STUDY_DATE + "101500"  # DT: the date part is the original date
    output.ImageComments = f"ref 9{STUDY_DATE}7 and 1.2.{STUDY_DATE}.5"  # inside a number and inside a UID
    report = check(original_bytes, output)
    assert sources_by_path(report) == {"0008,002A": {"0008,0020"}}


def test_short_generic_and_kept_values_are_not_reported(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    # PatientSex (removed by Basic) is a one-letter code string: not identifying on its own.
    original = read(original_bytes)
    output.ImageComments = f"sex {original.PatientSex}, CT1, TEST, Y"
    # Manufacturer is kept by the Basic profile: its value is not PHI.
    output.DerivationDescription = str(original.Manufacturer)
    report = check(original_bytes, output)
    assert report.clean, [leak.describe() for leak in report.leaks]


def test_dates_kept_by_an_option_are_not_leaks_under_that_option(original_bytes: bytes) -> None:
    dates_kept = basic_profile(["RetainLongFullDates"])
    output = read(anonymized(original_bytes, dates_kept))
    assert output.StudyDate == STUDY_DATE
    assert check(original_bytes, output, dates_kept).clean
    under_basic = check(original_bytes, output, basic_profile())
    assert "0008,0020" in sources_by_path(under_basic)


def test_no_report_output_carries_a_value(original_bytes: bytes, output_bytes: bytes) -> None:
    output = read(output_bytes)
    output.ImageComments = f"{FAMILY} {GIVEN} {PATIENT_ID} {ACCESSION} {STUDY_DATE}"
    report = check(original_bytes, output)
    assert len(report.leaks) == 4
    text = json.dumps(report.as_json()) + repr(report) + " ".join(leak.describe() for leak in report.leaks)
    for value in (FAMILY, GIVEN, PATIENT_ID, ACCESSION, STUDY_DATE):
        assert value.lower() not in text.lower()
    assert report.as_json()["Clean"] is False


def test_uids_kept_by_retain_uids_are_not_leaks(original_bytes: bytes) -> None:
    uids_kept = basic_profile(["RetainUIDs"])
    output = read(anonymized(original_bytes, uids_kept))
    assert output.SOPInstanceUID == read(original_bytes).SOPInstanceUID
    assert check(original_bytes, output, uids_kept).clean
    assert {"0008,0018", "0002,0003"} <= set(sources_by_path(check(original_bytes, output)))


def test_a_removed_comment_repeated_in_a_kept_description_is_not_a_leak(original_bytes: bytes) -> None:
    ds = read(original_bytes)
    ds.ImageComments = "JPEG 2000 irreversible (lossy)"
    original = to_bytes(ds)
    output = read(anonymized(original, basic_profile()))
    output.DerivationDescription = f"JPEG 2000 irreversible (lossy) 20:1, reviewed by {GIVEN}"
    report = check(original, output)
    assert sources_by_path(report) == {"0008,2111": {"0010,0010"}}


def test_the_engines_own_markers_are_not_leaks() -> None:
    """A patient called Rules^Custom must not be found in the "custom rules" of DeidentificationMethod."""
    from io import BytesIO

    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
    from orthanc_anonymizer.deid.profiles import Action, Rule, TagPattern, basic_profile
    from orthanc_anonymizer.deid.uids import KeyedHasher
    from orthanc_anonymizer.deid.verify import find_residual_phi

    original = dcmread(get_testdata_file("CT_small.dcm"))
    original.PatientID = "PID-RULES"
    original.PatientName = "Rules^Custom"
    buffer = BytesIO()
    original.save_as(buffer)
    profile = basic_profile().with_rules([Rule(TagPattern.parse("0008,0080"), Action.X, "test")])
    output, _ = anonymize_bytes(buffer.getvalue(), AnonymizationSettings(profile=profile, hasher=KeyedHasher(b"k")))
    anonymized = dcmread(BytesIO(output))
    assert any("rules" in method.lower() for method in anonymized.DeidentificationMethod)
    assert find_residual_phi(original, anonymized, profile).clean
