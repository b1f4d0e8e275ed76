"""Through a real Orthanc (issue 14, classes 1 and 7).

- Every pydicom test file is uploaded; each one this Orthanc stores is anonymized by the plugin, none failed;
  against Orthanc 1.10.1, 1.12.7 and 1.13.0 the files it refuses are exactly the list the unit tests rely on
  (tests/unit/pydicom_files.py).
- A file with a marker in its preamble, its trailing padding and a file meta element is stored by Orthanc as it was
  sent (Orthanc rewrites none of it: the engine is the layer that must drop it); the plugin's copy, as Orthanc
  serves it (GET /instances/{id}/file), carries the marker in no encoding and has a zero preamble.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from orthanc_server import OrthancServer
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the helpers shared with the unit tests
from planted_markers import forms_found
from pydicom_files import REFUSED_BY_ORTHANC_1_10_1, pydicom_files

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
MARKER = "OrthancPlanted7Xw"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc of this module's own: 160 files and their copies would change what the shared one holds for the
    tests that count its studies and instances."""
    server = OrthancServer(tmp_path_factory.mktemp("every-pydicom-file")).start()
    yield server
    server.stop()


def test_every_file_orthanc_stores_is_anonymized_by_the_plugin(orthanc) -> None:
    refused: set[str] = set()
    stored: dict[str, str] = {}  # Orthanc instance ID -> file name (files holding one instance share one ID)
    for name, path in pydicom_files().items():
        response = orthanc.post("/instances", path.read_bytes(), headers={"Content-Type": "application/dicom"})
        if response.status_code != 200:
            refused.add(name)
            continue
        stored.setdefault(response.json()["ID"], name)
    if orthanc.json("/system")["Version"] in ("1.10.1", "1.12.7", "1.13.0"):  # each measured: the same files refused
        assert refused == REFUSED_BY_ORTHANC_1_10_1
    failed = {}
    for instance, name in stored.items():
        answer = orthanc.anonymize("instances", instance)
        if answer["Failed"] or answer["Instances"] != 1:
            failed[name] = answer["Failed"]
            continue
        copy = orthanc.get(f"/instances/{answer['Resource']}/file").content
        assert copy[:132] == bytes(128) + b"DICM", name
        assert dcmread(BytesIO(copy)).PatientIdentityRemoved == "YES", name
    assert not failed, failed


def _planted() -> bytes:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.preamble = MARKER.encode("utf-16-le").ljust(128, b"\x00")
    dataset[0xFFFCFFFC] = DataElement(0xFFFCFFFC, "OB", MARKER.encode() + b"\x00")
    dataset.file_meta.SourceApplicationEntityTitle = MARKER[:16]
    dataset.file_meta.PrivateInformationCreatorUID = "1.2.826.0.1.3680043.99.14"
    dataset.file_meta.PrivateInformation = MARKER.encode("latin-1") + b"\x00"
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_marker_outside_the_data_set_is_not_in_the_plugins_copy(orthanc) -> None:
    data = _planted()
    stored = orthanc.upload(data)
    # Orthanc keeps what it is sent, preamble and trailing padding included: the copy is the engine's to clean.
    assert orthanc.get(f"/instances/{stored['ID']}/file").content == data
    assert forms_found(data, MARKER)
    answer = orthanc.anonymize("instances", stored["ID"])
    assert answer["Failed"] == []
    copy = orthanc.get(f"/instances/{answer['Resource']}/file").content
    assert copy[:128] == bytes(128)
    assert not forms_found(copy, MARKER), forms_found(copy, MARKER)
    meta = dcmread(BytesIO(copy)).file_meta
    assert "SourceApplicationEntityTitle" not in meta and "PrivateInformation" not in meta
