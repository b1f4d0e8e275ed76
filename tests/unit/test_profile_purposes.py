"""A purpose test per shipped profile (issue 20): a generated study of the modality the profile is for, the values
that must survive (what the purpose needs) and every other identifying value, which must not (searched in the
output bytes in every encoding, and by the residual check).

A profile change that breaks its purpose (a dose registry's device identity, a research study's shifted dates) or
lets something through (a serial number, a date written in a description, a relative's name and phone number in a
medical alert) fails here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixel_images import PATIENT_NAME, US_IMAGE, make_instance
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from orthanc_anonymizer.deid.actions import MONTHS, DateMode, TextCleaner, find_written_dates
from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes, write_dataset
from orthanc_anonymizer.deid.pixels import OcrMode, PixelSettings
from orthanc_anonymizer.deid.profile_files import SHIPPED_DIRECTORY, load_profile_file, load_profiles
from orthanc_anonymizer.deid.profiles import Action, Option, Profile, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import IdentifyingValues, ValueKind, verify_bytes
from orthanc_anonymizer.errors import AnonymizationError, ProfileError

SHIPPED = SHIPPED_DIRECTORY
PROFILES = load_profiles(SHIPPED)
SECRET = b"purpose test secret"
X_RAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"

STUDY_DATE = "20240311"
# The study date as people write it in text (the ambiguous 11/03/2024 has two readings: both must go)
STUDY_DATE_WRITTEN = ("20240311", "2024-03-11", "11/03/2024", "11.03.2024", "11 March 2024", "March 11, 2024")

# The birth date as written in the description: removed in every profile, the one keeping real dates too
BIRTH_DATE_WRITTEN = ("19320115", "15 Jan 1932", "1932-01-15", "15/01/1932")
# Identifying values no profile may let through (beyond the ones a profile keeps on purpose, below)
PERSON = {
    "PatientName": "Vandermolen^Griselda",
    "PatientID": "MRN-55100423",
    "OtherPatientIDs": "ALT-88120577",
    "ReferringPhysicianName": "Okonkwo^Desmond",
    "AccessionNumber": "ACC-99182736",
    "PatientAddress": "17 Quillfeather Lane",
}
RELATIVES = ("Bartholomeus", "Rosalind", "Theophilus")
PHONES = ("0777 123 456", "+44 20 7946 0958")
EMAIL = "griselda.v@mailbox.example"
DEVICE = {
    "DeviceSerialNumber": "SN-4471902",
    "StationName": "CTROOM-7B",
    "PerformedStationName": "PERF-ROOM7B",
    "StationAETitle": "CT7BAE",
    "ScheduledStudyLocation": "Radiology Room 7B",
}
INSTITUTION = {"InstitutionName": "Saint Quillfeather Hospital", "InstitutionalDepartmentName": "Cardioradiology"}
CLINICAL = {
    "MedicalAlerts": f"contact husband {RELATIVES[0]} {PHONES[0]} phone",
    "Allergies": f"penicillin, daughter {RELATIVES[1]} knows",
    "PatientState": f"anxious, son {RELATIVES[2]} at bedside",
    "SpecialNeeds": f"interpreter, call {PHONES[1]}",
    "Occupation": "Glassblower",
    "PreMedication": "Lorazepam",
    "PatientComments": f"write to {EMAIL}",
}
ETHNIC = "Zorastrian"
# Kept by their purpose where a profile keeps them
ACQUISITION = {"Manufacturer": "Generic Scanners", "ManufacturerModelName": "Vistamax 64", "SoftwareVersions": "VX2.7"}
PROTOCOL = "Thorax routine"


def ct_instance(**extra: object) -> Dataset:
    """A CT image of a 92-year-old carrying every value above, dates in free text, and an overlay plane."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality = "CT"
    for values in (PERSON, DEVICE, INSTITUTION, CLINICAL, ACQUISITION):
        for keyword, value in values.items():
            setattr(ds, keyword, value)
    ds.PatientBirthDate = "19320115"
    ds.PatientAge = "092Y"
    ds.PatientSex = "F"
    ds.PatientSize = "1.62"
    ds.PatientWeight = "58"
    ds.EthnicGroup = ETHNIC
    ds.AdditionalPatientHistory = (
        f"92-year-old, emphysema since 2019; husband {RELATIVES[0]} reports cough since 11 March 2024"
    )
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = "101530"
    ds.StudyDescription = f"CT chest 2024-03-11 for {PERSON['PatientName'].replace('^', ' ')}, b. 15 Jan 1932"
    ds.SeriesDescription = f"Lung kernel, done March 11, 2024, ring {PHONES[0]}"
    ds.ProtocolName = PROTOCOL
    ds.ImageComments = "Compared with 11/03/2024 and 11.03.2024 (20240311)"
    ds.KVP = "120"
    ds.SliceThickness = "1.25"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(256)) * 2
    # An overlay plane (whatever it draws: a bitmap no text search reads) and its comment
    ds.add_new(0x60000010, "US", 16)
    ds.add_new(0x60000011, "US", 16)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\xa5\x5a" * 16)
    ds.add_new(0x60004000, "LT", "Vandermolen marked")
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _content(value_type: str, concept: Dataset, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS" if value_type != "PNAME" else "HAS OBS CONTEXT"
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([concept])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


DEVICE_OBSERVER = {
    "Name": "CTDEV-NORTH",
    "Manufacturer": "Generic Scanners",
    "Model": "Vistamax 64",
    "Serial": "DOS-5521",
}
DLP = "812.5"


def dose_sr() -> Dataset:
    """A CT radiation dose SR (TID 10011 in outline): device observer context, an acquisition with its protocol and
    dose, a person observer; the patient and device attributes of the CT above."""
    ds = ct_instance()
    for tag in [tag for tag in ds.keys() if tag >> 16 in (0x6000, 0x7FE0, 0x0028)]:  # noqa: SIM118
        del ds[tag]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = X_RAY_DOSE_SR
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("113701", "DCM", "X-Ray Radiation Dose Report")])
    acquisition = _content("CONTAINER", _code("113819", "DCM", "CT Acquisition"), ContinuityOfContent="SEPARATE")
    dlp = _content("NUM", _code("113838", "DCM", "DLP"))
    measured = Dataset()
    measured.NumericValue = DLP
    measured.MeasurementUnitsCodeSequence = Sequence([_code("mGy.cm", "UCUM", "mGy.cm")])
    dlp.MeasuredValueSequence = Sequence([measured])
    acquisition.ContentSequence = Sequence(
        [_content("TEXT", _code("125203", "DCM", "Acquisition Protocol"), TextValue=PROTOCOL), dlp]
    )
    ds.ContentSequence = Sequence(
        [
            _content("TEXT", _code("113794", "DCM", "Device Observer Name"), TextValue=DEVICE_OBSERVER["Name"]),
            _content(
                "TEXT",
                _code("113878", "DCM", "Device Observer Manufacturer"),
                TextValue=DEVICE_OBSERVER["Manufacturer"],
            ),
            _content("TEXT", _code("113879", "DCM", "Device Observer Model Name"), TextValue=DEVICE_OBSERVER["Model"]),
            _content(
                "TEXT", _code("113880", "DCM", "Device Observer Serial Number"), TextValue=DEVICE_OBSERVER["Serial"]
            ),
            _content("PNAME", _code("113870", "DCM", "Person Name"), PersonName="Okonkwo^Desmond"),
            _content(
                "TEXT", _code("121106", "DCM", "Comment"), TextValue=f"tech note: husband {RELATIVES[0]} {PHONES[0]}"
            ),
            acquisition,
        ]
    )
    return ds


def run(profile: Profile, ds: Dataset, **pixels: object) -> tuple[bytes, bytes]:
    original = write_dataset(ds)
    settings = AnonymizationSettings(
        profile=profile,
        hasher=KeyedHasher(SECRET),
        pixels=PixelSettings(**pixels),  # type: ignore[arg-type]
    )
    output, _report = anonymize_bytes(original, settings)
    return original, output


def encodings_of(value: str) -> set[bytes]:
    """``value`` as bytes in every encoding an instance may carry it in, lower-cased where that is ASCII."""
    forms = {value, value.lower(), value.upper()}
    found: set[bytes] = set()
    for form in forms:
        for codec in ("latin-1", "utf-8", "utf-16-le", "utf-16-be"):
            try:
                found.add(form.encode(codec))
            except UnicodeEncodeError:
                continue
    return found


def assert_absent(output: bytes, values: Iterable[str], profile: str) -> None:
    lowered = output.lower()
    for value in values:
        for encoded in encodings_of(value):
            assert encoded.lower() not in lowered, f"{profile}: {value!r} survived"


def assert_present(output: bytes, values: Iterable[str], profile: str) -> None:
    for value in values:
        assert value.encode("utf-8") in output, f"{profile}: {value!r} is gone, and the profile's purpose needs it"


def name_parts() -> list[str]:
    """The patient's names and IDs, and the birth date in its written forms."""
    return [*(part for value in PERSON.values() for part in value.split("^")), *BIRTH_DATE_WRITTEN]


def shifted_dates(output: Dataset) -> None:
    assert output.StudyDate != STUDY_DATE and len(output.StudyDate) == 8
    assert output.LongitudinalTemporalInformationModified == "MODIFIED"
    shift = date(2024, 3, 11) - date(int(output.StudyDate[:4]), int(output.StudyDate[4:6]), int(output.StudyDate[6:]))
    assert shift.days > 0
    # The description's date moved with the Study Date: one offset, no pair to un-shift it by
    moved = date(2024, 3, 11) - shift
    assert moved.isoformat() in str(output.StudyDescription)


# --- one test per shipped profile --------------------------------------------------------------------------------


def test_every_shipped_profile_has_a_purpose_test() -> None:
    tested = {"research-longitudinal", "ai-training", "teaching-file", "dose-monitoring", "example-site-rules", "basic"}
    assert set(PROFILES) == tested, "a profile without a purpose test: add one here"


def test_research_longitudinal_keeps_shifted_dates_and_characteristics_and_nothing_identifying() -> None:
    profile = PROFILES["research-longitudinal"]
    original, output = run(profile, ct_instance())
    after = dcmread(BytesIO(output))
    shifted_dates(after)
    assert after.PatientAge == "090Y" and after.PatientSex == "F" and after.PatientSize == 1.62
    assert after.EthnicGroup == ETHNIC  # a research covariate, PS3.15 RetainPatientChars
    assert "emphysema" in after.AdditionalPatientHistory and "CT chest" in after.StudyDescription
    assert after.AdditionalPatientHistory.startswith("90-year-old,")  # AgeCap in kept text too
    assert_present(output, [*ACQUISITION.values(), "120"], "research-longitudinal")
    assert_absent(
        output,
        [*name_parts(), *RELATIVES, *PHONES, EMAIL, *DEVICE.values(), *INSTITUTION.values(), *STUDY_DATE_WRITTEN],
        "research-longitudinal",
    )
    for keyword in ("MedicalAlerts", "Allergies", "PatientState", "SpecialNeeds", "Occupation", "PreMedication"):
        assert keyword not in after
    assert verify_bytes(original, output, profile).clean


def test_ai_training_keeps_what_a_model_is_stratified_by_and_drops_device_and_room_names() -> None:
    profile = PROFILES["ai-training"]
    original, output = run(profile, ct_instance())
    after = dcmread(BytesIO(output))
    shifted_dates(after)
    assert after.PatientAge == "090Y" and after.PatientSex == "F" and after.PatientWeight == 58
    assert_present(output, [*ACQUISITION.values(), "120", "1.25"], "ai-training")
    for keyword in (*DEVICE, "EthnicGroup", "AdditionalPatientHistory", *CLINICAL):
        assert keyword not in after, keyword
    assert_absent(
        output,
        [
            *name_parts(),
            *RELATIVES,
            *PHONES,
            EMAIL,
            *DEVICE.values(),
            *INSTITUTION.values(),
            ETHNIC,
            *STUDY_DATE_WRITTEN,
        ],
        "ai-training",
    )
    assert verify_bytes(original, output, profile).clean


def test_teaching_file_keeps_age_sex_size_and_cleaned_descriptions_and_no_date_or_overlay() -> None:
    profile = PROFILES["teaching-file"]
    original, output = run(profile, ct_instance())
    after = dcmread(BytesIO(output))
    assert after.PatientAge == "090Y" and after.PatientSex == "F" and after.PatientSize == 1.62
    assert "CT chest" in after.StudyDescription and "Lung kernel" in after.SeriesDescription
    assert after.LongitudinalTemporalInformationModified == "REMOVED"
    assert not [tag for tag in after.keys() if tag >> 16 == 0x6000]  # noqa: SIM118 (the overlay plane is gone)
    assert_absent(
        output,
        [
            *name_parts(),
            *RELATIVES,
            *PHONES,
            EMAIL,
            *DEVICE.values(),
            *INSTITUTION.values(),
            ETHNIC,
            *STUDY_DATE_WRITTEN,
        ],
        "teaching-file",
    )
    assert verify_bytes(original, output, profile).clean


def test_dose_monitoring_keeps_the_dose_report_device_identity_and_real_dates() -> None:
    profile = PROFILES["dose-monitoring"]
    original, output = run(profile, dose_sr())
    after = dcmread(BytesIO(output))
    # What a dose registry takes: the report's content, the device and site, real dates, age, sex, size, weight
    assert_present(
        output,
        [*DEVICE_OBSERVER.values(), DLP, PROTOCOL, *ACQUISITION.values(), *DEVICE.values(), *INSTITUTION.values()],
        "dose-monitoring",
    )
    assert after.StudyDate == STUDY_DATE and after.ProtocolName == PROTOCOL
    assert "CT chest 2024-03-11" in after.StudyDescription  # real dates kept, the patient's name cleaned out
    assert after.PatientAge == "090Y" and after.PatientSex == "F" and after.PatientSize == 1.62
    assert after.PatientWeight == 58
    # Nothing else of the patient, and no person in the report
    for keyword in ("EthnicGroup", "AdditionalPatientHistory", *CLINICAL):
        assert keyword not in after, keyword
    assert not after.get("PatientBirthDate", None) or not after.PatientBirthDate  # emptied (type 2)
    assert_absent(output, [*name_parts(), *RELATIVES, *PHONES, EMAIL, ETHNIC, "Glassblower"], "dose-monitoring")
    assert verify_bytes(original, output, profile).clean
    # The rules that keep age, sex, size and weight weaken Basic, and the markers say so
    codes = [item.CodeValue for item in after.DeidentificationMethodCodeSequence]
    assert "WEAKENED" in codes and after.PatientIdentityRemoved == "YES"
    method = list(after.DeidentificationMethod)
    assert "weakened by: 0010,1010;K 0010,0040;K 0010,1020;K 0010,1030;K" in method
    assert "ages of 90 years and over written as 90" in method


def test_example_site_rules_clean_the_series_description_rather_than_keep_it() -> None:
    profile = PROFILES["example-site-rules"]
    original, output = run(profile, ct_instance())
    after = dcmread(BytesIO(output))
    assert "Lung kernel" in after.SeriesDescription
    assert after.PatientAge == "092Y" and after.PatientSex == "F"  # kept as the site chose, no cap set
    assert "ProtocolName" not in after and "StudyDescription" not in after
    assert_absent(output, [*name_parts(), *PHONES, *STUDY_DATE_WRITTEN, *DEVICE.values()], "example-site-rules")
    assert verify_bytes(original, output, profile).clean


def test_basic_removes_every_identifying_value() -> None:
    original, output = run(PROFILES["basic"], ct_instance())
    assert_absent(
        output,
        [*name_parts(), *RELATIVES, *PHONES, EMAIL, *DEVICE.values(), *INSTITUTION.values(), *STUDY_DATE_WRITTEN],
        "basic",
    )
    assert verify_bytes(original, output, PROFILES["basic"]).clean


# --- burned-in text: each sharing profile redacts or refuses, as its description says -----------------------------


@pytest.mark.parametrize("name", ["ai-training", "dose-monitoring"])
def test_profiles_that_refuse_burned_in_text(name: str) -> None:
    profile = PROFILES[name]
    assert "refused" in profile.description
    drawn = make_instance(words_per_frame=[[(10, 5, PATIENT_NAME)]], sop_class=US_IMAGE, modality="US", burned_in="YES")
    with pytest.raises(AnonymizationError, match="0028,0301"):
        run(profile, drawn.dataset, ocr=OcrMode.Off)


@pytest.mark.parametrize("name", ["research-longitudinal", "teaching-file"])
def test_profiles_that_redact_burned_in_text(name: str) -> None:
    profile = PROFILES[name]
    assert "redacted" in profile.description
    drawn = make_instance(words_per_frame=[[(10, 5, PATIENT_NAME)]], sop_class=US_IMAGE, modality="US", burned_in="YES")
    _, output = run(profile, drawn.dataset, ocr=OcrMode.Always)  # the shipped rules' ultrasound band, and OCR
    after = dcmread(BytesIO(output))
    assert after.BurnedInAnnotation == "NO"
    assert (after.pixel_array[drawn.text[0]] == 0).all()


# --- the residual check catches what the engine used to leave ------------------------------------------------------


@pytest.mark.parametrize("written", STUDY_DATE_WRITTEN)
def test_the_residual_check_counts_an_original_date_written_in_text(written: str) -> None:
    profile = PROFILES["research-longitudinal"]
    original, output = run(profile, ct_instance())
    assert verify_bytes(original, output, profile).clean
    leaked = dcmread(BytesIO(output))
    leaked.ImageComments = f"see prior of {written}"
    written_back = write_dataset(leaked)
    report = verify_bytes(original, written_back, profile)
    assert {(leak.tag, leak.kind) for leak in report.leaks} == {("0020,4000", ValueKind.DATE)}
    # The worker's check, which first looks for the values in the written bytes, finds it too
    values = IdentifyingValues.collect(dcmread(BytesIO(original)), profile)
    fast = values.search_written(dcmread(BytesIO(written_back)), [written_back])
    assert {(leak.tag, leak.kind) for leak in fast.leaks} == {("0020,4000", ValueKind.DATE)}


def test_a_shifted_date_landing_on_another_original_date_is_no_leak() -> None:
    """A calibration date exactly the patient's offset before the study: the shifted Study Date is that original
    date, and the residual check must not call it a leak (the worker would fail a good copy)."""
    profile = PROFILES["research-longitudinal"]
    first = dcmread(BytesIO(run(profile, ct_instance())[1]))
    offset = date(2024, 3, 11) - date(int(first.StudyDate[:4]), int(first.StudyDate[4:6]), int(first.StudyDate[6:]))
    earlier = (date(2024, 3, 11) - offset).strftime("%Y%m%d")
    original, output = run(profile, ct_instance(DateOfLastCalibration=earlier))
    assert dcmread(BytesIO(output)).StudyDate == earlier
    assert verify_bytes(original, output, profile).clean
    values = IdentifyingValues.collect(dcmread(BytesIO(original)), profile)
    assert values.search_written(dcmread(BytesIO(output)), [output]).clean
    # The real study date in text is still a leak
    leaked = dcmread(BytesIO(output))
    leaked.ImageComments = "prior 2024-03-11"
    assert not verify_bytes(original, write_dataset(leaked), profile).clean


def test_the_residual_check_counts_a_kept_overlay_plane(tmp_path: Path) -> None:
    profile = PROFILES["teaching-file"]  # CleanGraph: overlay planes are removed
    original, output = run(profile, ct_instance())
    leaked = dcmread(BytesIO(output))
    leaked.add_new(0x60000010, "US", 16)
    leaked.add_new(0x60003000, "OW", b"\xa5\x5a" * 16)
    report = verify_bytes(original, write_dataset(leaked), profile)
    assert [(leak.tag, leak.kind) for leak in report.leaks] == [("6000,3000", ValueKind.OVERLAY)]
    values = IdentifyingValues.collect(dcmread(BytesIO(original)), profile)
    fast = values.search_written(leaked, [write_dataset(leaked)])
    assert [(leak.tag, leak.kind) for leak in fast.leaks] == [("6000,3000", ValueKind.OVERLAY)]
    kept = profile.with_rules(load_profile_file(_rules(tmp_path, "60xx,3000;K")).rules)
    assert verify_bytes(original, write_dataset(leaked), kept).clean  # kept on purpose by a rule: no leak


def _rules(folder: Path, text: str) -> Path:
    path = folder / "rules.csv"
    path.write_text(text + "\n")
    return path


# --- the classes behind them ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", STUDY_DATE_WRITTEN)
def test_every_written_form_of_a_date_is_shifted_or_removed(written: str) -> None:
    shifted = TextCleaner((), "shift", 30).clean(f"seen {written} again", "LT")
    removed = TextCleaner((), "remove").clean(f"seen {written} again", "LT")
    assert removed == "seen *** again"
    if written == "11/03/2024":  # 11 March or 3 November: shifting one reading would leave the other real
        assert shifted == "seen *** again"
    else:
        moved = date(2024, 3, 11) - timedelta(days=30)
        assert [meaning for found in find_written_dates(shifted) for meaning in found.meanings] == [moved]
    assert TextCleaner((), "keep").clean(f"seen {written} again", "LT") == f"seen {written} again"


def test_an_unambiguous_day_first_or_month_first_date_is_shifted_in_its_own_order() -> None:
    cleaner = TextCleaner((), "shift", 10)
    assert cleaner.clean("25/03/2024 and 03/25/2024", "LT") == "15/03/2024 and 03/15/2024"


def test_text_loses_relatives_names_phones_and_emails_but_not_clinical_words() -> None:
    cleaner = TextCleaner((), "keep")
    text = "husband John Smith 0777 123 456, daughter: Mary; son is present; mail j.doe@x.org; 120 kVp 250 mAs"
    cleaned = cleaner.clean(text, "LT")
    for value in ("John", "Smith", "Mary", "0777", "j.doe"):
        assert value not in cleaned
    assert "son is present" in cleaned and "120 kVp 250 mAs" in cleaned


def test_age_cap_in_text_writes_ages_over_the_cap_as_the_cap() -> None:
    cleaner = TextCleaner((), "keep", 0, 90)
    for written, capped in (
        ("92-year-old woman", "90-year-old woman"),
        ("a 95 years old man", "a 90 years old man"),
        ("91 yo", "90 yo"),
        ("93y F", "90y F"),
        ("aged 99", "aged 90"),
        ("Age: 101", "Age: 90"),
    ):
        assert cleaner.clean(written, "LT") == capped
    for kept in ("45-year-old", "aged 89", "5 years ago", "DLP 92.5", "120 kVp"):
        assert cleaner.clean(kept, "LT") == kept
    assert TextCleaner((), "keep").clean("92-year-old", "LT") == "92-year-old"


def test_age_cap_from_each_format_and_a_bad_one_refused(tmp_path: Path) -> None:
    (tmp_path / "capped.json").write_text('{"AgeCap": 90}')
    (tmp_path / "capped-xml.xml").write_text('<profile age-cap="85"/>')
    (tmp_path / "bad.json").write_text('{"AgeCap": "ninety"}')
    assert load_profile_file(tmp_path / "capped.json").age_cap == 90
    assert load_profile_file(tmp_path / "capped-xml.xml").age_cap == 85
    with pytest.raises(ProfileError, match="AgeCap must be a whole number"):
        load_profile_file(tmp_path / "bad.json")
    (tmp_path / "zero.json").write_text('{"AgeCap": 0}')
    with pytest.raises(ProfileError, match=r"zero.json: AgeCap: 0 years; expected a number of years from 1 to 999"):
        load_profile_file(tmp_path / "zero.json")
    (tmp_path / "bad-xml.xml").write_text('<profile age-cap="ninety"/>')
    with pytest.raises(ProfileError, match=r"bad-xml.xml, line 1: age-cap 'ninety'"):
        load_profile_file(tmp_path / "bad-xml.xml")
    assert "AgeCap" not in basic_profile().describe()
    assert load_profile_file(tmp_path / "capped.json").describe()["AgeCap"] == 90


def test_age_cap_moves_a_kept_birth_date(tmp_path: Path) -> None:
    profile = Profile(options=frozenset({Option.RetainLongFullDates}), age_cap=90).with_rules(
        load_profile_file(_rules(tmp_path, "0010,0030;K\n0010,1010;K")).rules
    )
    _, output = run(profile, ct_instance())
    after = dcmread(BytesIO(output))
    assert after.PatientAge == "090Y" and after.PatientBirthDate == "19340311"
    younger = ct_instance(PatientAge="045Y", PatientBirthDate="19790101")
    after = dcmread(BytesIO(run(profile, younger)[1]))
    assert after.PatientAge == "045Y" and after.PatientBirthDate == "19790101"
    assert basic_profile().age_cap is None


# --- dates in text as a class: every form, in every attribute a shifting or removing profile cleans -------------

FORMS = {
    "iso": "{y:04d}-{m:02d}-{d:02d}",
    "da": "{y:04d}{m:02d}{d:02d}",
    "dotted": "{d:02d}.{m:02d}.{y:04d}",
    "slashed": "{d}/{m}/{y:04d}",
    "month-first": "{m:02d}/{d:02d}/{y:04d}",
    "words": "{d} {month} {y:04d}",
    "us-words": "{month} {d}, {y:04d}",
}


@given(
    day=st.dates(min_value=date(1900, 1, 1), max_value=date(2199, 12, 31)),
    form=st.sampled_from(sorted(FORMS)),
    mode=st.sampled_from(["shift", "remove"]),
    before=st.sampled_from(["", "seen ", "CT (", "prior: "]),
    after=st.sampled_from(["", " follow-up", ")", ", again"]),
)
def test_no_reading_of_a_written_date_survives_shifting_or_removal(
    day: date, form: str, mode: DateMode, before: str, after: str
) -> None:
    month = MONTHS[day.month - 1].capitalize()
    text = before + FORMS[form].format(y=day.year, m=day.month, d=day.day, month=month) + after
    cleaned = TextCleaner((), mode, 400).clean(text, "LT")
    readings = [meaning for found in find_written_dates(cleaned) for meaning in found.meanings]
    assert day not in readings, (text, cleaned)
    if mode == "remove":
        assert readings == [] and "***" in cleaned


def _cleaned_text_tags(profile: Profile) -> list[int]:
    """Every standard text attribute (LO, LT, ST, UT, UC) at the top level that ``profile`` cleans (C), of those
    pydicom's dictionary knows; SH is left out (16 characters hold no sentence)."""
    table = profile.action_table
    tags = {*table.table_exact, 0x00081030, 0x0008103E, 0x00181030, 0x00400254}
    return sorted(
        tag for tag in tags if table.action_for(tag) is Action.C and _vr(tag) in ("LO", "LT", "ST", "UT", "UC")
    )


def _vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


@pytest.mark.parametrize("name", ["research-longitudinal", "ai-training", "teaching-file", "example-site-rules"])
def test_a_date_relative_and_phone_planted_in_every_cleaned_attribute_are_in_no_output_byte(name: str) -> None:
    profile = PROFILES[name]
    tags = _cleaned_text_tags(profile)
    assert tags, name
    ds = ct_instance()
    for index, tag in enumerate(tags):
        written = STUDY_DATE_WRITTEN[index % len(STUDY_DATE_WRITTEN)]
        ds.add_new(tag, dictionary_VR(tag), f"prior {written}, husband {RELATIVES[0]} {PHONES[index % 2]}")
    original, output = run(profile, ds)
    assert_absent(output, [*STUDY_DATE_WRITTEN, RELATIVES[0], *PHONES], name)
    assert verify_bytes(original, output, profile).clean
