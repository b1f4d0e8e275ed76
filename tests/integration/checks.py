"""What a user checks on an anonymized copy: read back from Orthanc and compared with the original."""

from __future__ import annotations

import json
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.profiles import Profile, basic_profile
from orthanc_anonymizer.deid.verify import verify_bytes

LEVEL_OF = {"patients": "Patient", "studies": "Study", "series": "Series", "instances": "Instance"}
PARENT = {"instances": "ParentSeries", "series": "ParentStudy", "studies": "ParentPatient"}


def read(data: bytes) -> Dataset:
    from io import BytesIO

    return dcmread(BytesIO(data))


def instance_files(server: Any, level: str, resource: str) -> dict[str, bytes]:
    """Orthanc instance ID -> stored file, for every instance of the resource."""
    if level == "instances":
        return {resource: server.get(f"/instances/{resource}/file").content}
    ids = [item["ID"] for item in server.json(f"/{level}/{resource}/instances")]
    return {instance: server.get(f"/instances/{instance}/file").content for instance in ids}


def metadata(server: Any, level: str, resource: str, name: str) -> str | None:
    response = server.get(f"/{level}/{resource}/metadata/{name}")
    return response.text if response.status_code == 200 else None


def assert_anonymized_copy(
    server: Any,
    level: str,
    source: str,
    originals: dict[str, bytes],
    answer: dict[str, Any],
    profile: Profile | None = None,
) -> dict[str, bytes]:
    """The copy in ``answer`` is complete, de-identified, linked at every level; the originals are unchanged.

    ``originals``: original Orthanc instance ID -> the bytes that were uploaded. Returns the copy's files.
    """
    profile = profile or basic_profile()
    assert answer["Source"] == source
    assert answer["Level"] == LEVEL_OF[level]
    assert answer["Failed"] == []
    assert answer["Instances"] == len(originals)
    copy = answer["Resource"]
    assert copy and copy != source

    # The originals are byte for byte what was uploaded.
    assert instance_files(server, level, source) == originals

    copies = instance_files(server, level, copy)
    assert len(copies) == len(originals)
    original_by_sop = {read(data).SOPInstanceUID: (oid, data) for oid, data in originals.items()}
    for copy_id, data in copies.items():
        ds = read(data)
        assert ds.PatientIdentityRemoved == "YES"
        source_id = metadata(server, "instances", copy_id, "AnonymizedFromResource")
        matching = [entry for entry in original_by_sop.values() if entry[0] == source_id]
        assert matching, f"copy {copy_id} names an unknown original {source_id}"
        original = read(matching[0][1])
        assert str(ds.PatientName) != str(original.PatientName)
        assert ds.SOPInstanceUID != original.SOPInstanceUID
        assert ds.StudyInstanceUID != original.StudyInstanceUID
        report = verify_bytes(matching[0][1], data, profile)
        assert report.clean, [leak.describe() for leak in report.leaks]
        profile_json = json.loads(metadata(server, "instances", copy_id, "AnonymizationProfile") or "{}")
        assert profile_json["Profile"] == profile.name
        assert sorted(profile_json["Options"]) == sorted(option.value for option in profile.options)

    # Every level above the instance is linked to its original too, and the links route answers both ways.
    some_copy = next(iter(copies))
    some_original = metadata(server, "instances", some_copy, "AnonymizedFromResource")
    assert some_original is not None
    copy_chain = _chain(server, some_copy)
    original_chain = _chain(server, some_original)
    for segment in ("instances", "series", "studies", "patients"):
        assert metadata(server, segment, copy_chain[segment], "AnonymizedFromResource") == original_chain[segment]
        assert metadata(server, segment, copy_chain[segment], "AnonymizationProfile")
        links = server.json(f"/anonymizer/{segment}/{copy_chain[segment]}/links")
        assert links["Source"] == original_chain[segment]
        back = server.json(f"/anonymizer/{segment}/{original_chain[segment]}/links")
        assert copy_chain[segment] in back["Copies"]
        assert back["Source"] is None
    assert copy_chain[level] == copy
    return copies


def _chain(server: Any, instance: str) -> dict[str, str]:
    chain = {"instances": instance}
    child = "instances"
    for segment in ("series", "studies", "patients"):
        chain[segment] = server.json(f"/{child}/{chain[child]}")[PARENT[child]]
        child = segment
    return chain
