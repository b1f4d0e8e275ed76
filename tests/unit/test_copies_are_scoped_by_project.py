"""Issue 14 item 5: UIDs belong to one copy.

UIDs, pseudonyms and date offsets are keyed by the secret and the project; UIDs also by the patient identity the
caller chose. Copies that differ in project or chosen identity share no UID and no pseudonym; the empty scope
(no project, no chosen identity) gives exactly the output of the versions before projects (pinned below).
"""

from __future__ import annotations

from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import BASIC, Option
from orthanc_anonymizer.deid.uids import MAX_PROJECT_LENGTH, KeyedHasher, check_project
from orthanc_anonymizer.server.api import BadRequest, parse_anonymize, parse_batch
from orthanc_anonymizer.server.auto_anonymize import resolve_auto_anonymize
from orthanc_anonymizer.server.config import AnonymizerConfig
from orthanc_anonymizer.server.ingest import AutoAnonymizeConfig, IngestConfigurationError
from orthanc_anonymizer.server.job_records import JobSettings

SECRET = b"pinned-secret-of-an-existing-site"
CT = get_testdata_file("CT_small.dcm")
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _anonymized(data: bytes, **chosen: object) -> Dataset:
    profile = chosen.pop("profile", BASIC)
    settings = AnonymizationSettings(profile=profile, hasher=KeyedHasher(SECRET), **chosen)  # type: ignore[arg-type]
    output, _ = anonymize_bytes(data, settings)
    return dcmread(BytesIO(output))


@pytest.fixture(scope="module")
def ct_bytes() -> bytes:
    assert CT is not None
    with open(CT, "rb") as handle:
        return handle.read()


def _uids(dataset: Dataset) -> set[str]:
    return {str(dataset[keyword].value) for keyword in UID_KEYWORDS}


def test_the_empty_scope_keeps_the_mapping_of_earlier_versions(ct_bytes: bytes) -> None:
    """Values computed with the engine before projects existed (main at d5d2edb), for a fixed secret: a site that
    upgrades keeps its mapping, so later copies of a study still join the earlier ones."""
    hasher = KeyedHasher(SECRET)
    assert hasher.scoped() is hasher
    assert hasher.uid("1.2.826.0.1.3680043.2.1125.1.1") == "2.25.251930811068601102246096681849673657547"
    assert hasher.patient_id("id:PAT-1\x00") == "ANON5D5OYSMUS5XC"
    assert hasher.patient_name("id:PAT-1\x00") == "ANONYMOUS^AF3IRHT4"
    assert hasher.date_offset_days("id:PAT-1\x00") == 3405
    copy = _anonymized(ct_bytes)
    assert copy.StudyInstanceUID == "2.25.139774349025532381702575574689385788718"
    assert copy.SeriesInstanceUID == "2.25.107671088817978046514085934578652085617"
    assert copy.SOPInstanceUID == "2.25.205031071591675194453861717894806679548"
    assert copy.FrameOfReferenceUID == "2.25.146579909782237258254153481119794515264"
    assert (copy.PatientID, str(copy.PatientName)) == ("ANON5DYG4SST77H3", "ANONYMOUS^YGSQVNRY")
    shifted = _anonymized(ct_bytes, profile=BASIC.with_options([Option.RetainLongModifDates]))
    assert (shifted.StudyDate, shifted.AcquisitionDate) == ("20000720", "19931030")


def test_copies_for_two_projects_share_no_uid_pseudonym_or_date_offset(ct_bytes: bytes) -> None:
    profile = BASIC.with_options([Option.RetainLongModifDates])
    first = _anonymized(ct_bytes, profile=profile, project="LUNG-2026")
    second = _anonymized(ct_bytes, profile=profile, project="CARDIO")
    none = _anonymized(ct_bytes, profile=profile)
    for one, other in ((first, second), (first, none), (second, none)):
        assert not _uids(one) & _uids(other)
        assert one.PatientID != other.PatientID
        assert str(one.PatientName) != str(other.PatientName)
    # one offset for the patient within a project, another in the other project
    offsets = {(copy.StudyDate, copy.AcquisitionDate) for copy in (first, second, none)}
    assert len(offsets) == 3
    # the same project twice: the same copy
    again = _anonymized(ct_bytes, profile=profile, project="LUNG-2026")
    assert _uids(again) == _uids(first) and again.PatientID == first.PatientID and again.StudyDate == first.StudyDate


def test_copies_for_two_chosen_identities_share_no_uid_or_pseudonym(ct_bytes: bytes) -> None:
    copies = [
        _anonymized(ct_bytes),
        _anonymized(ct_bytes, patient_name="TRIAL^A", patient_id="SUBJ-A"),
        _anonymized(ct_bytes, patient_name="TRIAL^B", patient_id="SUBJ-B"),
        _anonymized(ct_bytes, patient_name="TRIAL^A"),
        _anonymized(ct_bytes, patient_id="SUBJ-A"),
        _anonymized(ct_bytes, patient_name="", patient_id=""),
    ]
    for index, one in enumerate(copies):
        for other in copies[index + 1 :]:
            assert not _uids(one) & _uids(other)
    # a copy given only a name and one given another name share no derived PatientID; given only an ID, no name
    only_a, only_b = _anonymized(ct_bytes, patient_name="TRIAL^A"), _anonymized(ct_bytes, patient_name="TRIAL^B")
    assert only_a.PatientID != only_b.PatientID != copies[0].PatientID != only_a.PatientID
    id_a, id_b = _anonymized(ct_bytes, patient_id="SUBJ-A"), _anonymized(ct_bytes, patient_id="SUBJ-B")
    assert str(id_a.PatientName) != str(id_b.PatientName)
    # the same chosen identity twice: the same UIDs
    assert _uids(_anonymized(ct_bytes, patient_name="TRIAL^A", patient_id="SUBJ-A")) == _uids(copies[1])
    # the chosen identity does not change the date offset: it is the patient's, in the project
    profile = BASIC.with_options([Option.RetainLongModifDates])
    plain = _anonymized(ct_bytes, profile=profile)
    chosen = _anonymized(ct_bytes, profile=profile, patient_name="TRIAL^A", patient_id="SUBJ-A")
    assert plain.StudyDate == chosen.StudyDate


def test_references_inside_one_copy_still_agree() -> None:
    """A scope changes the key, not the mapping's consistency: a referenced UID maps as its target does."""
    ds_path = get_testdata_file("rtplan.dcm")
    assert ds_path is not None
    with open(ds_path, "rb") as handle:
        data = handle.read()
    original = dcmread(BytesIO(data))
    copy = _anonymized(data, project="P", patient_name="X", patient_id="Y")
    reference = original.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
    hasher = KeyedHasher(SECRET).scoped("P", "X", "Y")
    assert copy.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == hasher.uid(reference)
    assert copy.SOPInstanceUID == hasher.uid(original.SOPInstanceUID)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        st.text(max_size=8), st.one_of(st.none(), st.text(max_size=8)), st.one_of(st.none(), st.text(max_size=8))
    ),
    st.tuples(
        st.text(max_size=8), st.one_of(st.none(), st.text(max_size=8)), st.one_of(st.none(), st.text(max_size=8))
    ),
)
def test_different_scopes_never_derive_the_same_key(
    first: tuple[str, str | None, str | None], second: tuple[str, str | None, str | None]
) -> None:
    """No two scopes share a key (the scope is encoded without ambiguity: "A" + "B^C" is not "A^B" + "C")."""
    hasher = KeyedHasher(SECRET)
    one, other = hasher.scoped(*first), hasher.scoped(*second)
    assert (one.secret == other.secret) == (first == second)
    assert (one.uid("1.2.3") == other.uid("1.2.3")) == (first == second)


@pytest.mark.parametrize(
    ("project", "problem"),
    [
        ("x" * (MAX_PROJECT_LENGTH + 1), "longer than 64"),
        ("LUNG\n2026", "non-printable"),
        ("LUNG\x00", "non-printable"),
        (" LUNG", "space"),
        ("LUNG ", "space"),
        (12, "expected a string"),
    ],
)
def test_a_bad_project_is_refused_naming_it_everywhere(project: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_project(project)
    config = AnonymizerConfig()
    body = {"Project": project}
    with pytest.raises(BadRequest, match=f"^Project: .*{problem}"):
        parse_anonymize(_json(body), config)
    with pytest.raises(BadRequest, match=f"^Project: .*{problem}"):
        parse_batch(_json({**body, "Level": "Study", "Resources": ["a"]}), config)
    with pytest.raises(IngestConfigurationError, match=f"AutoAnonymize.Project: .*{problem}"):
        AutoAnonymizeConfig.parse({"Enabled": True, "Project": project})


def _json(body: dict[str, object]) -> bytes:
    import json

    return json.dumps(body).encode()


def test_the_project_travels_with_requests_batches_jobs_and_the_audit() -> None:
    config = AnonymizerConfig()
    request = parse_anonymize(b'{"Project": "LUNG-2026 (site B)"}', config)
    assert request.settings.project == "LUNG-2026 (site B)"
    batch = parse_batch(b'{"Level": "Study", "Resources": ["a"], "Project": "CARDIO"}', config)
    assert batch.settings.project == "CARDIO"
    assert parse_anonymize(b"{}", config).settings.project == ""
    assert check_project("x" * MAX_PROJECT_LENGTH) == "x" * MAX_PROJECT_LENGTH
    assert check_project("Étude 東京") == "Étude 東京"
    # the job record, the audit record and the AnonymizationProfile metadata are made from describe()
    assert batch.settings.describe()["Project"] == "CARDIO"
    assert JobSettings(profile=BASIC).describe()["Project"] == ""
    assert batch.settings.engine_settings(KeyedHasher(SECRET)).project == "CARDIO"
    assert AutoAnonymizeConfig.parse({"Project": "AUTO-1"}).project == "AUTO-1"
    setup = resolve_auto_anonymize(AnonymizerConfig(auto_anonymize={"Enabled": True, "Project": "AUTO-1"}), {})
    assert setup is not None and setup.settings.project == "AUTO-1"
