"""Refuse only what cannot be read (issue 14, class 7): every pydicom test file that Orthanc stores (160 of 194,
measured with Orthanc 1.10.1, see pydicom_files.py) is anonymized by the engine, under Basic and under the options
that keep the most, none refused, each output readable, clean by the residual check, and with no dciodvfy error its
input did not have. Those it refuses get a reason a user can act on, never a value of the file."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom_files import REFUSED_BY_ORTHANC_1_10_1, pydicom_files, stored_by_orthanc
from test_dciodvfy import DCIODVFY, dciodvfy_errors

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profiles import Option, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import verify_bytes
from orthanc_anonymizer.errors import AnonymizerError

KEEPING = [option for option in Option if option not in (Option.CleanPixelData, Option.RetainLongModifDates)]
PROFILES = {"basic": basic_profile(), "keeping": basic_profile(KEEPING)}
STORED = stored_by_orthanc()
# What the engine says of each file Orthanc refuses: words a user acts on (what is missing or wrong, where).
ACTIONABLE = (
    "not a DICOM file",
    "no SOP Instance UID (0008,0018): not an instance (a DICOMDIR?), or cut short",
    "the file is cut short",
    "the file is damaged",
    "not a valid DICOM file",
)


def test_the_measured_list_names_real_files() -> None:
    assert len(STORED) >= 150
    assert set(REFUSED_BY_ORTHANC_1_10_1) <= set(pydicom_files())
    # The files the issue found refused: read now, as Orthanc reads them.
    for name in ("test_files/rtstruct.dcm", "charset_files/chrJapMulti.dcm", "test_files/ExplVR_LitEndNoMeta.dcm"):
        assert name in STORED


@pytest.mark.parametrize("name", sorted(STORED))
def test_every_file_orthanc_stores_is_anonymized_and_valid(name: str, tmp_path: Path) -> None:
    original = STORED[name].read_bytes()
    errors_before = dciodvfy_errors(STORED[name]) if DCIODVFY else set()
    for label, profile in PROFILES.items():
        anonymization = AnonymizationSettings(profile=profile, hasher=KeyedHasher(b"every pydicom file"))
        output = anonymize_bytes(original, anonymization)[0]  # raises (fails the test) if refused
        result = dcmread(BytesIO(output))
        assert result.PatientIdentityRemoved == "YES"
        assert output[:132] == bytes(128) + b"DICM"
        report = verify_bytes(original, output, profile)
        assert report.clean, (label, [leak.describe() for leak in report.leaks])
        if DCIODVFY:
            path = tmp_path / f"{label}.dcm"
            path.write_bytes(output)
            gained = dciodvfy_errors(path) - errors_before
            assert not gained, f"{label}: " + "\n".join(sorted(gained))


@pytest.mark.parametrize("name", sorted(REFUSED_BY_ORTHANC_1_10_1))
def test_a_refused_file_gets_a_reason_a_user_can_act_on(name: str) -> None:
    data = pydicom_files()[name].read_bytes()
    try:
        anonymize_bytes(data, AnonymizationSettings(hasher=KeyedHasher(b"every pydicom file")))
    except AnonymizerError as error:
        assert any(reason in str(error) for reason in ACTIONABLE), str(error)
        dataset = dcmread(BytesIO(data), force=True)
        for value in (dataset.get("PatientName"), dataset.get("PatientID")):
            assert not value or str(value) not in str(error)
    # Anonymizing what Orthanc refuses is no fault: the output is still checked by the other tests' rules.


BARE_SEEDS = {
    name: STORED[name].read_bytes() for name in ("test_files/rtstruct.dcm", "test_files/ExplVR_BigEndNoMeta.dcm")
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(BARE_SEEDS)),
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=3000), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=3000)),
)
def test_a_damaged_file_without_preamble_fails_cleanly_or_anonymizes_fully(
    seed: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    """Reading files without the preamble opens a new way in: damaged ones give a typed error or a clean output."""
    data = bytearray(BARE_SEEDS[seed])
    name = str(dcmread(BytesIO(bytes(data)), force=True).get("PatientName", "")).encode()
    for position, value in edits:
        if position < len(data):
            data[position] = value
    try:
        output = anonymize_bytes(bytes(data[:cut]), AnonymizationSettings(hasher=KeyedHasher(b"bare")))[0]
    except AnonymizerError:
        return
    assert output[:132] == bytes(128) + b"DICM"
    assert dcmread(BytesIO(output)).PatientIdentityRemoved == "YES"
    assert not name or name not in output
