"""The one instance pipeline: each way an instance can fail is a Failure member, found by a scenario that makes it;
callers (the audit record, Gateway mode) count and branch on that field, whatever the message says."""

from __future__ import annotations

import pickle
from io import BytesIO

from pydicom import dcmread
from pydicom.data import get_testdata_file

from orthanc_anonymizer.audit import anonymization_record
from orthanc_anonymizer.deid.engine import AnonymizationSettings
from orthanc_anonymizer.deid.profile_files import parse_rules
from orthanc_anonymizer.deid.profiles import Option, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.pipeline import Failure, InstanceFailure, InstanceTask, anonymize_instance
from orthanc_anonymizer.server.gateway import DISCARD, decide_in_worker
from orthanc_anonymizer.server.ingest import IngestFilter

HASHER = KeyedHasher(b"pipeline test secret")


def ct(**changes: str) -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    dataset = dcmread(path)
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    buffer = BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def task(**settings: object) -> InstanceTask:
    return InstanceTask(AnonymizationSettings(hasher=HASHER, **settings))  # type: ignore[arg-type]


def same_task_settings(patient_id: str) -> AnonymizationSettings:
    """RetainUIDs and the original's PatientID: the copy has the original's identity."""
    profile = basic_profile().with_options([Option.RetainUIDs.value])
    return AnonymizationSettings(profile=profile, hasher=HASHER, patient_id=patient_id)


def test_a_clean_copy_has_no_failure_and_travels_whole_through_pickle() -> None:
    outcome = anonymize_instance(ct(), task())
    assert outcome.failure is None and outcome.reason == "" and outcome.error is None
    assert outcome.residual_clean is True and outcome.orthanc_id and outcome.counts
    copy = pickle.loads(pickle.dumps(outcome))  # as a worker process sends it back
    assert copy.data == outcome.data and copy.md5 == outcome.md5
    assert dcmread(BytesIO(copy.data)).PatientIdentityRemoved == "YES"


def test_each_failure_comes_from_its_scenario() -> None:
    assert anonymize_instance(b"not DICOM at all", task()).failure is Failure.INVALID_INPUT
    leaky = basic_profile().with_rules(parse_rules("0020,4000;K\n", "csv", "test"))
    leaking = anonymize_instance(
        ct(ImageComments="Quintrellhaus was here", PatientName="Quintrellhaus^A"), task(profile=leaky)
    )
    assert leaking.failure is Failure.RESIDUAL_PHI and leaking.data is not None and leaking.error is None
    assert "0020,4000" in leaking.residual_leaks and "Quintrellhaus" not in leaking.reason
    original_id = str(dcmread(BytesIO(ct())).PatientID)
    same = anonymize_instance(ct(), InstanceTask(same_task_settings(original_id)))
    assert same.failure is Failure.WOULD_REPLACE_ORIGINAL and same.data is None
    # Files (the CLI) have no Orthanc ID to clash on; the chosen PatientID is the original's, so the residual-PHI
    # check would rightly find it: off here, to see the identity check alone.
    files = InstanceTask(same_task_settings(original_id), orthanc_identity=False, check_residual=False)
    assert anonymize_instance(ct(), files).failure is None
    ct_only = IngestFilter.parse({"Modality": ["CT"]})
    missed = decide_in_worker(ct(Modality="US"), task(), ct_only, "DicomProtocol")
    assert missed.action == DISCARD and missed.failure is Failure.NOT_MATCHED


def test_the_audit_record_counts_leaks_by_field_not_by_message() -> None:
    record = anonymization_record(
        user="u",
        job="j",
        level="Study",
        source="s",
        result=None,
        source_instances=3,
        instances=1,
        failed=[
            InstanceFailure("a", "residual PHI found at 0020,4000; copy not stored", None),  # the words, not the type
            InstanceFailure("b", "worded otherwise", Failure.RESIDUAL_PHI),
            InstanceFailure("c", "cannot store the copy: refused"),
        ],
        settings={},
        counts={},
        residual_checked=2,
        residual_not_checked=0,
    )
    assert record["ResidualPhi"] == {"Checked": 2, "NotChecked": 0, "Leaking": 1}
    assert record["Failed"] == [
        {"Instance": "a", "Reason": "residual PHI found at 0020,4000; copy not stored"},
        {"Instance": "b", "Reason": "worded otherwise"},
        {"Instance": "c", "Reason": "cannot store the copy: refused"},
    ]
    assert record["Job"] == "j" and "Complete" in record and "Mode" not in record
