"""Scenarios a privacy officer or a research PACS administrator would check on the engine's output."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import date
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes, anonymize_dataset, read_dataset
from orthanc_anonymizer.deid.profiles import Action, Rule, TagPattern, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.errors import InvalidDicomError

SECRET = b"scenario secret"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "examples_overlay.dcm",
    "waveform_ecg.dcm",
    "test-SR.dcm",
]
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"


def settings(options: list[str] | None = None, **kwargs: object) -> AnonymizationSettings:
    return AnonymizationSettings(profile=basic_profile(options or []), hasher=KeyedHasher(SECRET), **kwargs)  # type: ignore[arg-type]


def to_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def roundtrip(ds: Dataset, config: AnonymizationSettings) -> Dataset:
    return dcmread(BytesIO(anonymize_bytes(to_bytes(ds), config)[0]))


def make_instance(study: str, series: str, sop: str, **attributes: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = study[:60] + ".9"
    ds.PatientName = "Smith^Alice"
    ds.PatientID = "MRN-0042"
    ds.PatientBirthDate = "19700203"
    ds.StudyDate = "20240110"
    ds.AcquisitionDate = "20240112"
    ds.ContentDate = "20240112"
    ds.StudyDescription = "CT chest Smith follow-up 10.01.2024 MRN-0042"
    ds.InstitutionName = "St Elsewhere Hospital"
    ds.Modality = "CT"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "HOSPITAL_CT1"
    ds.file_meta = meta
    return ds


def test_pydicom_test_files_anonymize_and_read_back_with_pixels_untouched() -> None:
    for name in PYDICOM_FILES:
        path = get_testdata_file(name)
        assert path, name
        data = Path(path).read_bytes()
        original = dcmread(BytesIO(data))
        output, report = anonymize_bytes(data, settings())
        anonymized = dcmread(BytesIO(output))
        assert anonymized.PatientIdentityRemoved == "YES", name
        assert str(anonymized.PatientName) != str(original.get("PatientName", "x")), name
        assert anonymized.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, name
        if "PixelData" in original:
            assert anonymized.PixelData == original.PixelData, name  # passed through, never decoded
        assert anonymized.SOPInstanceUID != original.SOPInstanceUID
        assert report.sop_instance_uid == anonymized.SOPInstanceUID
        assert not any(change.original for change in report.changes), "values recorded without being asked"


def test_patient_name_removed_at_any_depth() -> None:
    ds = make_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1")
    inner = Dataset()
    inner.PatientName = "Smith^Alice"
    inner.PatientID = "MRN-0042"
    middle = Dataset()
    middle.ReferencedPatientSequence = Sequence([inner])  # depth 3
    outer = Dataset()
    outer.ReferencedStudySequence = Sequence([middle])
    ds.ContributingEquipmentSequence = Sequence([outer])
    out = roundtrip(ds, settings(["RetainDeviceIdent"]))
    text = str(out)
    assert "Smith" not in text
    assert "MRN-0042" not in text
    # The path is still there (the standard cleans sequences it keeps), with its inner values replaced.
    assert "ContributingEquipmentSequence" in out


def test_references_stay_consistent_across_separate_calls() -> None:
    study = generate_uid()
    series = generate_uid()
    first = make_instance(study, series, generate_uid())
    second = make_instance(study, series, generate_uid())
    # A presentation state in the same study that points at the first image (a type 1 reference in its IOD).
    state = make_instance(study, generate_uid(), generate_uid(), SOPClassUID=GSPS)
    image = Dataset()
    image.ReferencedSOPClassUID = CT_IMAGE
    image.ReferencedSOPInstanceUID = first.SOPInstanceUID
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = series
    series_ref.ReferencedImageSequence = Sequence([image])
    state.ReferencedSeriesSequence = Sequence([series_ref])
    out_first = roundtrip(first, settings())
    out_second = roundtrip(second, settings())  # a separate call, as another process or replica would make it
    out_state = roundtrip(state, settings())
    assert out_first.StudyInstanceUID == out_second.StudyInstanceUID == out_state.StudyInstanceUID != study
    assert out_first.SeriesInstanceUID == out_second.SeriesInstanceUID
    assert out_first.FrameOfReferenceUID == out_second.FrameOfReferenceUID
    reference = out_state.ReferencedSeriesSequence[0]
    assert reference.SeriesInstanceUID == out_first.SeriesInstanceUID
    assert reference.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out_first.SOPInstanceUID
    assert reference.ReferencedImageSequence[0].ReferencedSOPClassUID == CT_IMAGE  # SOP classes never change
    other_secret = AnonymizationSettings(hasher=KeyedHasher(b"another site"))
    assert roundtrip(first, other_secret).StudyInstanceUID != out_first.StudyInstanceUID


def test_same_output_in_another_process() -> None:
    path = get_testdata_file("CT_small.dcm")
    here = anonymize_bytes(Path(path).read_bytes(), settings())[0]
    code = (
        "import sys;from orthanc_anonymizer.deid.engine import *;from orthanc_anonymizer.deid.profiles import basic_profile;"
        "from orthanc_anonymizer.deid.uids import KeyedHasher;"
        f"d=open({path!r},'rb').read();"
        "sys.stdout.buffer.write(anonymize_bytes(d,AnonymizationSettings(profile=basic_profile([]),"
        "hasher=KeyedHasher(b'scenario secret')))[0])"
    )
    there = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout
    assert there == here


def test_patient_pseudonyms_are_stable_per_patient_and_choosable() -> None:
    a = roundtrip(make_instance("1.5.1", "1.5.1.1", "1.5.1.1.1"), settings())
    b = roundtrip(make_instance("1.5.2", "1.5.2.1", "1.5.2.1.1"), settings())  # another study, same patient
    assert a.PatientID == b.PatientID and str(a.PatientName) == str(b.PatientName)
    assert a.PatientID and a.PatientID != "MRN-0042"
    other = make_instance("1.5.3", "1.5.3.1", "1.5.3.1.1", PatientID="MRN-0043")
    assert roundtrip(other, settings()).PatientID != a.PatientID
    chosen = roundtrip(
        make_instance("1.5.1", "1.5.1.1", "1.5.1.1.1"), settings(patient_name="Study^Subject01", patient_id="SUBJ01")
    )
    assert str(chosen.PatientName) == "Study^Subject01" and chosen.PatientID == "SUBJ01"


def test_modified_dates_keep_intervals_and_say_so() -> None:
    out = roundtrip(make_instance("1.6.1", "1.6.1.1", "1.6.1.1.1"), settings(["RetainLongModifDates"]))
    study = date.fromisoformat(f"{out.StudyDate[:4]}-{out.StudyDate[4:6]}-{out.StudyDate[6:]}")
    acquisition = date.fromisoformat(f"{out.AcquisitionDate[:4]}-{out.AcquisitionDate[4:6]}-{out.AcquisitionDate[6:]}")
    assert out.StudyDate != "20240110"
    assert (acquisition - study).days == 2
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    full = roundtrip(make_instance("1.6.1", "1.6.1.1", "1.6.1.1.1"), settings(["RetainLongFullDates"]))
    assert full.StudyDate == "20240110" and full.LongitudinalTemporalInformationModified == "UNMODIFIED"
    basic = roundtrip(make_instance("1.6.1", "1.6.1.1", "1.6.1.1.1"), settings())
    assert basic.StudyDate == "" and basic.LongitudinalTemporalInformationModified == "REMOVED"


def test_clean_descriptions_keep_text_without_identifying_values() -> None:
    out = roundtrip(make_instance("1.7.1", "1.7.1.1", "1.7.1.1.1"), settings(["CleanDesc"]))
    description = out.StudyDescription
    assert description.startswith("CT chest")
    for value in ("Smith", "MRN-0042", "10.01.2024"):
        assert value not in description
    assert "follow-up" in description
    assert "StudyDescription" not in roundtrip(make_instance("1.7.1", "1.7.1.1", "1.7.1.1.1"), settings())


def test_markers_name_profile_and_options() -> None:
    out = roundtrip(make_instance("1.8.1", "1.8.1.1", "1.8.1.1.1"), settings(["RetainUIDs", "CleanDesc"]))
    assert out.PatientIdentityRemoved == "YES"
    methods = list(out.DeidentificationMethod)
    assert "RetainUIDs" in methods and "CleanDesc" in methods
    assert any("2026d" in method for method in methods)
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113110", "113105"}
    assert all(item.CodingSchemeDesignator == "DCM" for item in out.DeidentificationMethodCodeSequence)


def test_safe_private_attributes_kept_only_under_their_creator() -> None:
    ds = make_instance("1.9.1", "1.9.1.1", "1.9.1.1.1")
    block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
    block.add_new(0x00, "DS", "1.5")  # (7053,xx00) SUV factor: safe
    block.add_new(0x01, "LO", "Smith^Alice")  # not in Table E.3.10-1
    other = ds.private_block(0x0009, "ACME SECRET", create=True)
    other.add_new(0x00, "LO", "MRN-0042")
    removed = roundtrip(ds, settings())
    assert not any(element.tag.is_private for element in removed)
    kept = roundtrip(ds, settings(["RetainSafePrivate"]))
    philips = kept.private_block(0x7053, "Philips PET Private Group")
    assert philips[0x00].value == "1.5"
    assert 0x70531001 not in kept
    assert 0x00090010 not in kept and 0x00091000 not in kept


def test_custom_rule_wins_at_every_depth() -> None:
    ds = make_instance("1.10.1", "1.10.1.1", "1.10.1.1.1")
    item = Dataset()
    item.InstitutionName = "St Elsewhere Hospital"
    ds.ReferencedSeriesSequence = Sequence([item])
    profile = basic_profile().with_rules([Rule(TagPattern.parse("0008,0080"), Action.K, "test")])
    out = roundtrip(ds, AnonymizationSettings(profile=profile, hasher=KeyedHasher(SECRET)))
    assert out.InstitutionName == "St Elsewhere Hospital"
    assert out.ReferencedSeriesSequence[0].InstitutionName == "St Elsewhere Hospital"
    wildcard = basic_profile().with_rules([Rule(TagPattern.parse("0008,xxxx"), Action.X, "test")])
    out = roundtrip(ds, AnonymizationSettings(profile=wildcard, hasher=KeyedHasher(SECRET)))
    assert "Modality" not in out and "SOPClassUID" not in out


def test_file_meta_is_anonymized_and_consistent() -> None:
    out = roundtrip(make_instance("1.11.1", "1.11.1.1", "1.11.1.1.1"), settings())
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != "1.11.1.1.1"
    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_compound_codes_follow_the_iod() -> None:
    ds = make_instance("1.12.1", "1.12.1.1", "1.12.1.1.1")
    ct = roundtrip(ds, settings())
    assert ct.ContentDate == ""  # Z/D on a type 2C attribute of the CT Image IOD: kept, empty
    assert "AcquisitionDate" not in ct  # X/Z/D on a type 3 attribute: removed
    assert ct.PatientID  # Z/D, then the keyed pseudonym
    private_class = make_instance("1.12.2", "1.12.2.1", "1.12.2.1.1", SOPClassUID="1.2.826.0.1.3680043.99.77")
    unknown = roundtrip(private_class, settings())
    # IOD unknown: the alternative that keeps any IOD valid
    assert unknown.InstitutionName == "ANONYMIZED"  # X/Z/D -> D
    assert unknown.AcquisitionDate == ""  # X/Z -> Z


def test_dry_run_values_only_when_asked() -> None:
    ds = make_instance("1.13.1", "1.13.1.1", "1.13.1.1.1")
    silent = anonymize_dataset(copy.deepcopy(ds), settings())
    assert all(change.original is None and change.new is None for change in silent.changes)
    verbose = anonymize_dataset(copy.deepcopy(ds), settings(record_values=True))
    institution = next(change for change in verbose.changes if change.tag == "0008,0080")
    assert institution.original == "St Elsewhere Hospital" and institution.action == "X"


def test_not_dicom_and_truncated_input_are_refused() -> None:
    with pytest.raises(InvalidDicomError, match="DICM"):
        read_dataset(b"%PDF-1.4 not an image" * 20)
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    with pytest.raises(InvalidDicomError):
        anonymize_bytes(data[:1000], settings())


def test_structured_report_content_is_dummied_or_cleaned() -> None:
    ds = make_instance("1.14.1", "1.14.1.1", "1.14.1.1.1", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11")
    concept = Dataset()
    concept.CodeValue = "121060"
    concept.CodingSchemeDesignator = "DCM"
    concept.CodeMeaning = "History"
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = Sequence([concept])
    text.TextValue = "Smith seen on 10.01.2024, fracture healing well"
    observer = Dataset()
    observer.RelationshipType = "HAS OBS CONTEXT"
    observer.ValueType = "PNAME"
    observer.PersonName = "Jones^Robert"
    ds.ContentSequence = Sequence([text, observer])
    basic = roundtrip(ds, settings())
    assert basic.ContentSequence[0].TextValue == "ANONYMIZED"  # Content Sequence is D: free text dummied
    assert basic.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning == "History"  # structure kept
    assert str(basic.ContentSequence[1].PersonName) == "ANONYMOUS"
    cleaned = roundtrip(ds, settings(["CleanStructdCont"]))
    value = cleaned.ContentSequence[0].TextValue
    assert "fracture healing well" in value and "Smith" not in value and "10.01.2024" not in value
    assert "Jones" not in str(cleaned.ContentSequence[1].PersonName)


def test_without_recorded_changes_the_counts_are_the_same() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    data = Path(path).read_bytes()
    listed = anonymize_dataset(read_dataset(data), settings(["CleanDesc"]))
    counted = anonymize_dataset(read_dataset(data), settings(["CleanDesc"]), record_changes=False)
    assert counted.changes == []
    expected: dict[str, int] = {}
    for change in listed.changes:
        expected[change.action] = expected.get(change.action, 0) + 1
    assert counted.counts() == listed.counts() == expected
