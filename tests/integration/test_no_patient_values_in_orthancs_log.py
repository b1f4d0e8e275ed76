"""pydicom's warnings quote the values they complain about; in the plugin they reach Orthanc's log without them."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from study_generator import Patient, make_instance, to_bytes

pytestmark = pytest.mark.integration


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom, here in the test, writing the invalid values
def test_invalid_values_are_warned_about_without_the_values(orthanc) -> None:
    patient = Patient(name="Warningname^Quirinus", id="PID-WARN-55")
    ds = make_instance(patient, generate_uid(), generate_uid(), 1, 1)
    ds.add_new(0x00180015, "CS", "lower case Quirinus")  # kept by the profile, invalid for CS
    ds.add_new(0x00081030, "LO", "Quirinus " * 10)  # too long for LO
    study = orthanc.upload(to_bytes(ds))["ParentStudy"]

    answer = orthanc.anonymize("studies", study)

    (failed,) = answer["Failed"]  # the name survives in BodyPartExamined: the residual check stops the copy
    assert "0018,0015" in failed["Reason"]
    log = orthanc.log_text()
    assert "UserWarning from" in log  # the warnings did reach the log, routed through logging
    assert "Quirinus" not in log
    assert "Quirinus" not in (orthanc.state / "audit.jsonl").read_text()
