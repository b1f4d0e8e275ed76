"""Clean Pixel Data's boxes in a dry run's answer and in the audit trail: where the blackout falls, coordinates
only (instance, frame, left, top, width, height, and whether a rule or OCR found it), never a pixel or a word."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pixel_images import PATIENT_ID, PATIENT_NAME, STUDY_DATE, make_instance
from test_jobs import FakeOrthanc, manager, orthanc  # noqa: F401  (fixtures)

from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.writing import write_dataset
from orthanc_anonymizer.server.job_records import Job, JobSettings, JobState
from orthanc_anonymizer.server.jobs import JobManager

REGION_KEYS = {"Instance", "Frame", "Left", "Top", "Width", "Height", "Source", "Rule"}


def run(manager: JobManager, instance: str, dry_run: bool = False) -> Job:  # noqa: F811
    settings = JobSettings(basic_profile(["CleanPixelData"]), dry_run=dry_run)
    job = manager.submit(Job(level="instances", resources=[instance], settings=settings, user="u"))
    assert job.done.wait(120)
    return job


def _covers(regions: list[dict[str, object]], text: np.ndarray) -> bool:
    mask = np.zeros(text.shape, dtype=bool)
    for region in regions:
        left, top = int(region["Left"]), int(region["Top"])  # type: ignore[call-overload]
        right, bottom = left + int(region["Width"]), top + int(region["Height"])  # type: ignore[call-overload]
        frame = region["Frame"]
        frames = slice(None) if frame is None else slice(int(frame) - 1, int(frame))  # type: ignore[call-overload]
        mask[frames, top:bottom, left:right] = True
    return bool(mask[text].all())


def test_dry_run_and_audit_record_carry_the_boxes(
    manager: JobManager,  # noqa: F811
    orthanc: FakeOrthanc,  # noqa: F811
    tmp_path: Path,
) -> None:
    drawn = make_instance(
        words_per_frame=[[(12, 8, PATIENT_NAME), (20, 120, PATIENT_ID)], [(150, 200, STUDY_DATE)]], burned_in="YES"
    )
    instance = orthanc.add(write_dataset(drawn.dataset))["ID"]
    dry = run(manager, instance, dry_run=True)
    assert dry.state is JobState.SUCCESS
    (result,) = dry.record()["Results"]
    regions = result["PixelRegions"]
    assert regions and all(set(region) <= REGION_KEYS and region["Instance"] == instance for region in regions)
    assert {region["Frame"] for region in regions} == {1, 2}
    assert _covers(regions, drawn.text)
    # The boxes are about the words: a small part of the image.
    assert sum(int(region["Width"]) * int(region["Height"]) for region in regions) < 0.1 * drawn.text.size

    copy = run(manager, instance)
    assert copy.state is JobState.SUCCESS
    dry_record, copy_record = manager.audit.read()  # type: ignore[attr-defined]
    assert dry_record["Event"] == "dry-run" and dry_record["PixelRegions"] == regions
    assert copy_record["Event"] == "anonymize" and copy_record["PixelRegions"] == regions
    written = (tmp_path / "audit.jsonl").read_text() + json.dumps(dry.record()) + json.dumps(copy.record())
    for word in (PATIENT_NAME, PATIENT_ID, STUDY_DATE):
        for part in word.replace("^", " ").split():
            if not part.isdigit():
                assert part not in written
