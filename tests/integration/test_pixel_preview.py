"""Clean Pixel Data before committing: the dry run lists the boxes (coordinates only), and the pixel preview route
renders one frame before and after as a PNG, in the plugin, for the users allowed to see original values only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import requests
from orthanc_server import OrthancServer
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from pixel_images import PATIENT_ID, PATIENT_NAME, STUDY_DATE, make_instance

from orthanc_anonymizer.deid.writing import write_dataset

pytestmark = pytest.mark.integration
USERS = {"admin": "admin-pass-1", "operator": "operator-pass-2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    overrides = {
        "AuthenticationEnabled": True,
        "RegisteredUsers": USERS,
        "Anonymizer": {"Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["dry-run-values"]}},
    }
    server = OrthancServer(tmp_path_factory.mktemp("preview"), overrides, auth=("admin", USERS["admin"]))
    yield server.start()
    server.stop()


def test_dry_run_boxes_and_the_preview_for_authorized_users_only(server: OrthancServer) -> None:
    drawn = make_instance(words_per_frame=[[(12, 8, PATIENT_NAME), (150, 200, STUDY_DATE), (20, 120, PATIENT_ID)]])
    drawn.dataset.BurnedInAnnotation = "YES"
    instance = server.upload(write_dataset(drawn.dataset))["ID"]

    answer = server.anonymize("instances", instance, {"DryRun": True, "Options": ["CleanPixelData"]})
    regions = answer["PixelRegions"]
    assert regions and all(
        set(region) <= {"Instance", "Frame", "Left", "Top", "Width", "Height", "Source", "Rule"} for region in regions
    )
    boxes = np.zeros(drawn.text.shape[1:], dtype=bool)
    for region in regions:
        assert region["Instance"] == instance and region["Frame"] == 1
        boxes[region["Top"] : region["Top"] + region["Height"], region["Left"] : region["Left"] + region["Width"]] = (
            True
        )
    assert boxes[drawn.text[0]].all() and boxes.mean() < 0.1
    assert server.json("/anonymizer/audit")[-1]["PixelRegions"] == regions

    preview = server.get(f"/anonymizer/instances/{instance}/pixel-preview?options=CleanPixelData&frame=1")
    assert preview.status_code == 200, preview.text
    assert preview.headers["Content-Type"] == "image/png"
    sheet = np.asarray(Image.open(BytesIO(preview.content)).convert("L"))
    # 320x240 fitted in 256: 256x192 a side, 8 grey pixels between.
    assert sheet.shape == (192, 256 * 2 + 8)
    before, after = sheet[:, :256].astype(int), sheet[:, 264:].astype(int)
    small = np.asarray(Image.fromarray(boxes).resize((256, 192), Image.Resampling.NEAREST))
    assert (after[small] == 0).mean() > 0.9, "the boxes are not black in the preview"
    assert (before[small] != 0).mean() > 0.9, "the left side is not the original"
    assert np.abs(after[~small] - before[~small]).mean() < 2, "the preview changed what the boxes leave"

    operator = requests.Session()
    operator.auth = ("operator", USERS["operator"])
    refused = operator.get(f"{server.url}/anonymizer/instances/{instance}/pixel-preview", timeout=60)
    assert refused.status_code == 403 and refused.json()["Message"].startswith("dry-run-values:")
    assert "image" not in refused.headers.get("Content-Type", "")

    for query, part in (("frame=2", "frame 2"), ("frame=0", "frame"), ("size=9", "size"), ("options=Nonsense", "")):
        wrong = server.get(f"/anonymizer/instances/{instance}/pixel-preview?{query}")
        assert wrong.status_code == 400, (query, wrong.status_code)
        assert part in wrong.json()["Message"]
    assert server.get("/anonymizer/instances/no-such-instance/pixel-preview").status_code == 404
