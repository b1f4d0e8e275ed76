"""Throughput of Clean Pixel Data (PS3.15 E.3.1): time per instance with and without pixel work.

Run by hand: ``.venv/bin/python -m bench.pixels [--repeat N]``. Generated instances (the unit tests' generator:
words drawn into a smooth background), anonymized in memory, bytes in and bytes out, in this one process.
Prints one line per case: milliseconds per instance (median of the runs) and per frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from pixel_images import CT_IMAGE, PATIENT_ID, PATIENT_NAME, STUDY_DATE, US_MULTIFRAME, make_instance

from orthanc_anonymizer.deid.engine import AnonymizationSettings, anonymize_bytes, write_dataset
from orthanc_anonymizer.deid.pixels import OcrMode, PixelSettings, parse_redaction_rules
from orthanc_anonymizer.deid.profiles import basic_profile
from orthanc_anonymizer.deid.uids import KeyedHasher

WORDS = [(12, 8, PATIENT_NAME), (300, 8, PATIENT_ID), (400, 440, STUDY_DATE)]
BAND_ONLY = parse_redaction_rules(
    '[{"Name": "band", "Match": {"Modality": "US"}, "Regions": [{"Left": 0, "Top": 0, "Width": "100%", "Height": 40}]}]',
    "bench",
)


def settings(option: bool, **pixels: object) -> AnonymizationSettings:
    return AnonymizationSettings(
        profile=basic_profile(["CleanPixelData"] if option else []),
        hasher=KeyedHasher(b"bench"),
        pixels=PixelSettings(**pixels),  # type: ignore[arg-type]
    )


def cases() -> list[tuple[str, bytes, int, AnonymizationSettings]]:
    ct = write_dataset(
        make_instance(words_per_frame=[[]], rows=512, columns=512, bits=12, sop_class=CT_IMAGE, modality="CT").dataset
    )
    us = write_dataset(
        make_instance(
            words_per_frame=[WORDS],
            rows=480,
            columns=640,
            color=True,
            sop_class="1.2.840.10008.5.1.4.1.1.6.1",
            modality="US",
        ).dataset
    )
    cine = write_dataset(
        make_instance(
            words_per_frame=[WORDS] * 10,
            rows=480,
            columns=640,
            color=True,
            encoding="jpeg",
            sop_class=US_MULTIFRAME,
            modality="US",
        ).dataset
    )
    return [
        ("CT 512x512 12-bit, option off", ct, 1, settings(False)),
        ("CT 512x512 12-bit, CleanPixelData (no pixel work)", ct, 1, settings(True)),
        ("US 640x480 RGB, option off", us, 1, settings(False)),
        ("US 640x480 RGB, rule region only (OCR off)", us, 1, settings(True, rules=BAND_ONLY, ocr=OcrMode.Off)),
        ("US 640x480 RGB, starter rules (band + OCR)", us, 1, settings(True)),
        ("US cine 10x640x480 JPEG, option off", cine, 10, settings(False)),
        (
            "US cine 10x640x480 JPEG, rule region only -> RLE",
            cine,
            10,
            settings(True, rules=BAND_ONLY, ocr=OcrMode.Off),
        ),
        ("US cine 10x640x480 JPEG, starter rules (band + OCR) -> RLE", cine, 10, settings(True)),
    ]


def measure(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, data, frames, anonymization in cases():
        anonymize_bytes(data, anonymization)  # warm up: imports, rule loading
        seconds = measure(lambda: anonymize_bytes(data, anonymization), args.repeat)  # noqa: B023
        print(f"{name:<62} {seconds * 1000:9.1f} ms/instance {seconds * 1000 / frames:8.1f} ms/frame")


if __name__ == "__main__":
    main()
