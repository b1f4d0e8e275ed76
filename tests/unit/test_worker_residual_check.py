"""The worker's residual-PHI check (values collected before the engine runs, the output searched in memory) finds
what the standalone check finds on the two files parsed again: the same leaks, on clean and leaking outputs."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes
from orthanc_anonymizer.deid.profile_files import parse_rules
from orthanc_anonymizer.deid.profiles import Profile, basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.verify import verify_bytes
from orthanc_anonymizer.errors import AnonymizerError
from orthanc_anonymizer.pipeline import InstanceTask, anonymize_instance

SECRET = b"worker residual secret"
FAMILY = "Vanderberg"
PATIENT_ID = "PID-7730021"


def to_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def leaking_ct() -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = dcmread(path)
    ds.PatientName = f"{FAMILY}^Jonathan"
    ds.PatientID = PATIENT_ID
    ds.StudyDate = "19990312"
    ds.ImageComments = f"seen by {FAMILY}, {PATIENT_ID} on 19990312"
    ds.add_new(0x00091010, "LO", f"{FAMILY} {PATIENT_ID}")  # the GE block of CT_small: a private copy
    return to_bytes(ds)


# Rules that keep what the table removes: the output leaks, and both checks must say where.
LEAKY = basic_profile().with_rules(parse_rules("0020,4000;K\n0009,xxxx;K\n", "csv", "test"))


def worker(data: bytes, profile: Profile) -> tuple[bool | None, list[str], bytes | None, str | None]:
    outcome = anonymize_instance(data, InstanceTask(AnonymizationSettings(profile=profile, hasher=KeyedHasher(SECRET))))
    return outcome.residual_clean, sorted(outcome.residual_leaks), outcome.data, outcome.error


def standalone(data: bytes, profile: Profile) -> tuple[bool, list[str], bytes]:
    output = anonymize_bytes(data, AnonymizationSettings(profile=profile, hasher=KeyedHasher(SECRET)))[0]
    report = verify_bytes(data, output, profile)
    return report.clean, sorted(leak.path for leak in report.leaks), output


def test_a_kept_comment_and_private_copy_are_caught_by_the_worker() -> None:
    data = leaking_ct()
    clean, leaks, output, error = worker(data, LEAKY)
    assert error is None and output is not None
    assert clean is False
    assert "0020,4000" in leaks
    assert any(path.startswith("0009,") for path in leaks)
    assert (clean, leaks, output) == standalone(data, LEAKY)


def test_the_same_file_under_the_basic_profile_is_clean_for_both() -> None:
    data = leaking_ct()
    clean, leaks, output, error = worker(data, basic_profile())
    assert error is None
    assert clean is True and leaks == []
    assert (clean, leaks, output) == standalone(data, basic_profile())


@pytest.mark.parametrize("profile", [basic_profile(), LEAKY], ids=["basic", "leaky-rules"])
@pytest.mark.parametrize(
    "path", sorted(str(path) for path in get_testdata_files("*.dcm")), ids=lambda path: path.rsplit("/", 1)[-1]
)
def test_the_worker_and_the_standalone_check_agree_on_every_pydicom_file(path: str, profile: Profile) -> None:
    with open(path, "rb") as handle:
        data = handle.read()
    clean, leaks, output, error = worker(data, profile)
    try:
        expected = standalone(data, profile)
    except AnonymizerError:
        assert error is not None
        return
    if error is not None:
        assert "RetainUIDs" in error  # the copy would replace the original in Orthanc: refused before the check
        return
    assert (clean, leaks, output) == expected


def planted(*elements: tuple[int, str, object], charset: str | None = None) -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = dcmread(path)
    ds.PatientName = "Kirk^John Smith"
    ds.PatientID = PATIENT_ID
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for tag, vr, value in elements:
        ds.add_new(tag, vr, value)
    return to_bytes(ds)


KEEP_PRIVATE = basic_profile().with_rules(parse_rules("0009,xxxx;K\n", "csv", "test"))


@pytest.mark.parametrize(
    ("elements", "charset"),
    [
        # Found only through the lenient decoding of bytes: NULs read as spaces between the two words.
        ([(0x00091011, "OB", b"john\x00smith\x00")], None),
        # U+212A KELVIN SIGN matches "k" case-insensitively: in UTF-8 bytes of a kept binary element...
        ([(0x00091011, "OB", "\u212airk".encode())], None),
        # ...and in text of a UTF-8 data set.
        ([(0x00091010, "LO", "\u212aIRK")], "ISO_IR 192"),
        # Latin-1 text around the name.
        ([(0x00091010, "LO", "Müller KIRK Ærø")], "ISO_IR 100"),
        # A character set named again inside a sequence item.
        ([(0x00091010, "LO", "nothing here")], None),
    ],
    ids=["nul-separated", "kelvin-binary", "kelvin-utf8", "latin-1", "clean"],
)
def test_the_shortcut_on_the_written_bytes_agrees_with_the_full_search(
    elements: list[tuple[int, str, object]], charset: str | None
) -> None:
    data = planted(*elements, charset=charset)
    clean, leaks, output, error = worker(data, KEEP_PRIVATE)
    assert error is None
    assert (clean, leaks, output) == standalone(data, KEEP_PRIVATE)
    assert clean is (elements[0][2] == "nothing here")
