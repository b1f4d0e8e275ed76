"""Our buttons in the real Orthanc Explorer 2 (OE2) 1.14.1, the UI of today's orthancteam/orthanc images, as the
shipped configuration declares them (OrthancExplorer2.UiOptions.CustomButtons): open a study in OE2's list, click our
button, anonymize on the plugin's page, find the new study in OE2's list and its link back to the original; the bulk
button on two selected studies. OE2 is built from its source by tools/compat/build-oe2.sh for forky's Orthanc 1.13
(`make test-compat-forky`); on other Orthancs this file is skipped."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import OrthancServer, Steps, upload_study
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CHECKOUT = Path(__file__).resolve().parents[2]
OE2_PLUGIN = CHECKOUT / ".compat" / "oe2" / "libOrthancExplorer2.so"
ON_FORKY = os.environ.get("COMPAT_SUITE") == "forky"
OUR_ICON = "i.bi-incognito"  # the shipped buttons' icon: OE2 renders a custom button as its icon and tooltip
ORIGINAL_NAME = "Testperson^Gaudenzio"
NEW_NAME = "Research^Subject77"


@pytest.fixture(scope="module")
def oe2_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Orthanc with the plugin and OE2, configured from orthanc-config/orthanc.json (its CustomButtons)."""
    if not ON_FORKY:
        pytest.skip("Orthanc Explorer 2 is tested on forky's Orthanc 1.13: make test-compat-forky")
    assert OE2_PLUGIN.exists(), f"{OE2_PLUGIN} is missing: tools/compat/build-oe2.sh (make oe2) builds it"
    folder = tmp_path_factory.mktemp("browser-oe2")
    plugins = [*OrthancServer(folder).config["Plugins"], str(OE2_PLUGIN)]
    server = OrthancServer(folder, {"Plugins": plugins}).start()
    yield server
    server.stop()


def study_row(page: Any, name: str) -> Any:
    """A study's row in OE2's study list (one ``tbody`` per study: the row, then its details)."""
    return (
        page.locator("tbody")
        .filter(has=page.locator("tr.study-row-collapsed, tr.study-row-expanded"))
        .filter(has_text=name)
    )


def open_our_page(page: Any, button: Any) -> Any:
    """Click one of our buttons and return the page it opened. OE2 1.14.1 opens a GET button's URL in the window
    named "undefined" (it ignores Target): a new tab the first time, that same tab after."""
    before = list(page.context.pages)
    button.click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for candidate in page.context.pages:
            if (candidate not in before or candidate is page) and "/anonymizer/ui/" in candidate.url:
                candidate.wait_for_load_state()
                return candidate
        page.wait_for_timeout(100)
    raise AssertionError("no page of ours opened: " + ", ".join(p.url for p in page.context.pages))


def test_anonymize_a_study_from_oe2_and_find_the_copy_there(
    oe2_orthanc: Any, new_page: Any, steps_folder: Path
) -> None:
    study = upload_study(oe2_orthanc, ORIGINAL_NAME, "PID-OE2-1")
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{oe2_orthanc.url}/ui/app/")
    row = study_row(page, ORIGINAL_NAME)
    expect(row).to_have_count(1, timeout=60_000)
    row.locator("td.cut-text").first.click()  # expands the study: its buttons
    details = row.locator(".study-details-expanded")
    ours = details.locator(f"button.custom-button:has({OUR_ICON})")
    expect(ours).to_be_visible()
    expect(details.locator("button:has(i.bi-person-slash)")).to_have_count(0)  # core anonymizer hidden
    steps.shot("oe2-study-with-our-button")

    anonymizer = open_our_page(page, ours)
    expect(anonymizer).to_have_url(re.compile(f"/anonymizer/ui/anonymize.html\\?study={study}$"))
    dialog = anonymizer.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this study (DICOM PS3.15)")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_label("New PatientName (optional)").fill(NEW_NAME)
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog.locator("#oa-preview-table")).to_be_visible(timeout=60_000)
    steps.page = anonymizer
    steps.shot("our-page-preview")
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text("Done: 4 instances anonymized into 1 new study.", timeout=60_000)
    (new_study,) = oe2_orthanc.json(f"/anonymizer/studies/{study}/links")["Copies"]
    steps.shot("our-page-done")

    # The new study in OE2's list, through the page's link; its own button opens the page with the link back.
    line = dialog.locator(f'#oa-new-copies li[data-uuid="{new_study}"]')
    line.get_by_role("link", name="Orthanc Explorer 2").click()
    expect(anonymizer).to_have_url(re.compile(r"/ui/app/filtered-studies\?StudyInstanceUID="))
    copy_row = study_row(anonymizer, NEW_NAME)
    expect(copy_row).to_have_count(1, timeout=60_000)
    expect(study_row(anonymizer, ORIGINAL_NAME)).to_have_count(0)  # filtered on the copy
    expect(copy_row.locator(".study-details-expanded")).to_be_visible()  # &expand=study
    steps.shot("oe2-the-new-study")
    back = open_our_page(anonymizer, copy_row.locator(f"button.custom-button:has({OUR_ICON})"))
    original = back.locator("#oa-original li")
    expect(original).to_contain_text(f"Original study: {ORIGINAL_NAME}")
    expect(back.locator("#oa-profile-used")).to_contain_text("Profile basic")
    steps.page = back
    steps.shot("our-page-links-back")
    original.get_by_role("link", name="Orthanc Explorer 2").click()
    expect(study_row(back, ORIGINAL_NAME)).to_have_count(1, timeout=60_000)
    expect(study_row(back, NEW_NAME)).to_have_count(0)


def test_the_bulk_button_on_two_selected_studies(oe2_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    names = ("Testperson^Ludovica", "Testperson^Pancrazio")
    studies = [upload_study(oe2_orthanc, name, f"PID-OE2-BULK-{n}") for n, name in enumerate(names)]
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{oe2_orthanc.url}/ui/app/")
    for name in names:
        row = study_row(page, name)
        expect(row).to_have_count(1, timeout=60_000)
        row.locator("input.form-check-input").first.check()
    bulk = page.locator(f".study-list-bulk-buttons button.custom-button:has({OUR_ICON})")
    expect(bulk).to_be_enabled()
    steps.shot("oe2-two-selected")
    anonymizer = open_our_page(page, bulk)
    query = re.search(r"\?studies=([^&]+)$", anonymizer.url)
    assert query, anonymizer.url
    assert sorted(query.group(1).split(",")) == sorted(studies)
    dialog = anonymizer.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize 2 studies (DICOM PS3.15)")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text(
        "Done: 8 instances anonymized into 2 new studies.", timeout=60_000
    )
    steps.page = anonymizer
    steps.shot("our-page-batch-done")
    for study in studies:
        assert len(oe2_orthanc.json(f"/anonymizer/studies/{study}/links")["Copies"]) == 1
    jobs = [r for r in oe2_orthanc.json("/anonymizer/audit") if r["Event"] == "anonymize" and r["Source"] in studies]
    assert len({record["Job"] for record in jobs}) == 1, "one batch job"


def test_the_series_button_opens_the_page_for_that_series(oe2_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    name = "Testperson^Serafino"
    study = upload_study(oe2_orthanc, name, "PID-OE2-SERIES")
    series = oe2_orthanc.json(f"/studies/{study}")["Series"]
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{oe2_orthanc.url}/ui/app/")
    row = study_row(page, name)
    expect(row).to_have_count(1, timeout=60_000)
    row.locator("td.cut-text").first.click()
    series_row = row.locator("tr.series-row-collapsed").first
    expect(series_row).to_be_visible()
    series_row.locator("td.cut-text").nth(1).click()
    details = row.locator("tr.series-details-expanded")
    ours = details.locator(f"button.custom-button:has({OUR_ICON})")
    expect(ours).to_be_visible()
    steps.shot("oe2-series-with-our-button")
    anonymizer = open_our_page(page, ours)
    match = re.search(r"\?series=([0-9a-f-]+)$", anonymizer.url)
    assert match and match.group(1) in series, anonymizer.url
    dialog = anonymizer.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this series (DICOM PS3.15)")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text("Done: 2 instances anonymized into 1 new series.", timeout=60_000)
    (copy,) = oe2_orthanc.json(f"/anonymizer/series/{match.group(1)}/links")["Copies"]
    oe2 = dialog.locator(f'#oa-new-copies li[data-uuid="{copy}"]').get_by_role("link", name="Orthanc Explorer 2")
    expect(oe2).to_have_attribute("href", re.compile(r"ui/app/filtered-studies\?StudyInstanceUID=.+&expand=series$"))
