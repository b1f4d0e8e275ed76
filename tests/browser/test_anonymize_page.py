"""The plugin's own page, /anonymizer/ui/anonymize.html, which Orthanc Explorer 2's buttons open (the shipped
configuration's CustomButtons): the same dialog as the legacy explorer's, the resource with its original and copies,
links to each new copy in both explorers; the selected studies as one batch job. On any Orthanc: the page is the
plugin's (tests/browser/test_oe2.py clicks the buttons in the real Orthanc Explorer 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import PASSWORD, USER, OrthancServer, Steps, upload_study
from playwright.sync_api import expect

from orthanc_anonymizer.server.explorer import option_descriptions

pytestmark = pytest.mark.browser

ORIGINAL_NAME = "Testperson^Vincenzo"
NEW_NAME = "Research^Subject01"


def page_url(base: str, query: str) -> str:
    return f"{base}/anonymizer/ui/anonymize.html?{query}"


def new_copies(server: Any, study: str) -> list[str]:
    copies: list[str] = server.json(f"/anonymizer/studies/{study}/links")["Copies"]
    return copies


def anonymize_on_the_page(page: Any, base: str, server: Any, study: str, steps: Steps) -> str:
    """The study's page: check the dialog, preview, anonymize; returns the new study's Orthanc ID."""
    page.goto(page_url(base, f"study={study}"))
    expect(page.locator("#oa-resource-title")).to_have_text("This study")
    expect(page.locator("#oa-selected")).to_contain_text(ORIGINAL_NAME)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this study (DICOM PS3.15)")
    profile_names = [profile["Name"] for profile in server.json("/anonymizer/profiles")]
    expect(dialog.locator("#oa-profile option")).to_have_text(profile_names)
    expect(dialog.get_by_label("Profile")).to_have_value("basic")
    expect(dialog).to_contain_text("PS3.15 Basic Application Level Confidentiality Profile")
    for option in option_descriptions():
        expect(dialog.get_by_label(option["Title"], exact=False).first).not_to_be_checked()
        expect(dialog.get_by_text(option["Explanation"], exact=True)).to_be_visible()
    expect(dialog.get_by_label("Keep original")).to_be_checked()
    expect(dialog.get_by_role("button", name="Cancel")).to_have_count(0)  # the page is the dialog: nothing to close
    page.keyboard.press("Escape")
    expect(dialog).to_be_visible()

    dialog.get_by_label("Retain Device Identity").check()
    dialog.get_by_label("New PatientName (optional)").fill(NEW_NAME)
    steps.shot("dialog")
    before = len(server.json("/studies"))
    dialog.get_by_role("button", name="Preview").click()
    table = dialog.locator("#oa-preview-table")
    expect(table).to_be_visible(timeout=60_000)
    expect(table.locator('tr[data-keyword="PatientName"]')).to_contain_text("replaced")
    expect(table.locator('tr[data-keyword="StationName"]')).to_contain_text("kept")
    expect(table.locator('tr[data-keyword="InstitutionName"]')).to_contain_text("removed")
    expect(dialog).to_contain_text("4 instances, nothing stored")
    assert NEW_NAME not in table.inner_text() and ORIGINAL_NAME not in table.inner_text(), "values are never shown"
    steps.shot("preview")
    assert len(server.json("/studies")) == before, "the preview stored nothing"

    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    status = dialog.get_by_role("status")
    expect(status).to_have_text("Done: 4 instances anonymized into 1 new study.", timeout=60_000)
    (new_study,) = new_copies(server, study)
    line = dialog.locator(f'#oa-new-copies li[data-uuid="{new_study}"]')
    expect(line).to_contain_text(f"New study: {NEW_NAME}")
    uid = server.json(f"/studies/{new_study}")["MainDicomTags"]["StudyInstanceUID"]
    oe2 = line.get_by_role("link", name="Orthanc Explorer 2")
    expect(oe2).to_have_attribute("href", re.compile(r"ui/app/filtered-studies\?"))
    href = oe2.get_attribute("href")
    assert urlsplit(href).path.endswith("/ui/app/filtered-studies"), href
    assert parse_qs(urlsplit(href).query) == {"StudyInstanceUID": [uid], "expand": ["study"]}
    steps.shot("done")
    assert page.url == page_url(base, f"study={study}"), "the page stays on the original"
    assert server.get(f"/studies/{new_study}/metadata/AnonymizedFromResource").text == study

    # The copy in the legacy explorer, then the copy's own anonymization page, which links back to the original.
    line.get_by_role("link", name="Orthanc Explorer", exact=True).click()
    expect(page).to_have_url(re.compile(f"/app/explorer.html#study\\?uuid={new_study}$"))
    expect(page.locator("#study-info")).to_contain_text(NEW_NAME)
    page.go_back()
    dialog.get_by_role("button", name="Anonymize", exact=True).wait_for()
    page.goto(page_url(base, f"study={new_study}"))
    original = page.locator("#oa-original li")
    expect(original).to_contain_text(f"Original study: {ORIGINAL_NAME}")
    expect(page.locator("#oa-profile-used")).to_have_text(re.compile(r"^Profile basic, options RetainDeviceIdent"))
    steps.shot("the-copy-links-back")
    original.get_by_role("link", name="its anonymization page").click()
    expect(page.locator("#oa-copies")).to_contain_text(f"Copy 1: {NEW_NAME}")
    return new_study


def test_a_study_on_the_page_opened_by_oe2s_button(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    study = upload_study(open_orthanc)
    page = new_page()
    anonymize_on_the_page(page, open_orthanc.url, open_orthanc, study, Steps(page, steps_folder))


def test_the_page_with_authentication_and_behind_a_path_prefix(
    auth_orthanc: Any, open_orthanc: Any, prefix_proxy: Any, new_page: Any, steps_folder: Path
) -> None:
    study = upload_study(auth_orthanc)
    stranger = new_page()
    assert stranger.request.get(page_url(auth_orthanc.url, f"study={study}")).status == 401, "authentication is on"
    page = new_page(http_credentials={"username": USER, "password": PASSWORD})
    new_study = anonymize_on_the_page(page, auth_orthanc.url, auth_orthanc, study, Steps(page, steps_folder / "auth"))
    made = [r for r in auth_orthanc.json("/anonymizer/audit") if r["Event"] == "anonymize" and r["Result"] == new_study]
    assert [record["User"] for record in made] == [USER], "the anonymization ran as the logged-in user"

    study = upload_study(open_orthanc)
    page = new_page()
    anonymize_on_the_page(page, prefix_proxy.url, open_orthanc, study, Steps(page, steps_folder / "prefix"))
    asked = prefix_proxy.requests
    assert any(path.startswith("/pacs/anonymizer/ui/") for path in asked)
    assert any(path.startswith("/pacs/app/libs/") for path in asked)
    outside = [path for path in asked if not path.startswith("/pacs/") and path != "/favicon.ico"]
    assert outside == [], "every request stays under the prefix"


def test_the_selected_studies_as_one_batch_job(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    first = upload_study(open_orthanc, "Testperson^Ottavia", "PID-BULK-1")
    second = upload_study(open_orthanc, "Testperson^Quintilio", "PID-BULK-2")
    page = new_page()
    steps = Steps(page, steps_folder)
    posts: list[tuple[str, Any]] = []
    page.on("request", lambda r: posts.append((r.url, r.post_data)) if r.method == "POST" else None)
    page.goto(page_url(open_orthanc.url, f"studies={first},{second}"))
    expect(page.locator("#oa-resource-title")).to_have_text("2 selected studies")
    expect(page.locator("#oa-selected")).to_contain_text("Testperson^Ottavia")
    expect(page.locator("#oa-selected")).to_contain_text("Testperson^Quintilio")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize 2 studies (DICOM PS3.15)")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog).to_contain_text("8 instances, nothing stored", timeout=60_000)
    steps.shot("preview")
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text(
        "Done: 8 instances anonymized into 2 new studies.", timeout=60_000
    )
    steps.shot("done")
    copies = new_copies(open_orthanc, first) + new_copies(open_orthanc, second)
    assert len(copies) == 2
    for copy in copies:
        expect(dialog.locator(f'#oa-new-copies li[data-uuid="{copy}"]')).to_contain_text("New study: ")
    batches = [json.loads(body) for url, body in posts if url.endswith("/anonymizer/batch")]
    assert [(b["Level"], b["Resources"], b.get("DryRun")) for b in batches] == [
        ("Study", [first, second], True),
        ("Study", [first, second], None),
    ], "the preview and the anonymization are one batch job each"
    assert [url for url, _ in posts if not url.endswith("/anonymizer/batch")] == []


def test_failures_on_the_page_are_in_words(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{open_orthanc.url}/anonymizer/ui/anonymize.html")
    expect(page.locator("#oa-page-error")).to_contain_text("Nothing to anonymize: this page is opened by")
    assert page.request.get(f"{open_orthanc.url}/anonymizer/ui/nothing.js").status == 404

    kept = upload_study(open_orthanc, "Testperson^Ermenegildo", "PID-BULK-KEPT")
    gone = upload_study(open_orthanc, "Testperson^Genoveffa", "PID-BULK-GONE")
    page.goto(page_url(open_orthanc.url, f"studies={kept},{gone}"))
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    assert open_orthanc.session.delete(f"{open_orthanc.url}/studies/{gone}").status_code == 200  # someone else
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    status = dialog.get_by_role("status")
    expect(status).to_contain_text("The copy was made, but incomplete.", timeout=60_000)
    expect(status).to_contain_text(f"The study {gone[:8]}… no longer exists in Orthanc.")
    expect(dialog.locator("#oa-new-copies li")).to_have_count(1)
    steps.shot("one-of-two-gone")


def test_a_user_refused_the_links_route_still_anonymizes_on_the_page(
    tmp_path: Path, new_page: Any, steps_folder: Path
) -> None:
    overrides = {
        "AuthenticationEnabled": True,
        "RegisteredUsers": {"admin": "admin-browser-password", USER: PASSWORD},
        "Anonymizer": {"Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["links"]}},
    }
    server = OrthancServer(tmp_path, overrides, auth=("admin", "admin-browser-password")).start()
    try:
        study = upload_study(server)
        page = new_page(http_credentials={"username": USER, "password": PASSWORD})
        steps = Steps(page, steps_folder)
        page.goto(page_url(server.url, f"study={study}"))
        expect(page.locator("#oa-resource")).to_contain_text(
            "Orthanc refused access while loading its original and copies (HTTP 403)"
        )
        dialog = page.get_by_role("dialog")
        expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
        dialog.get_by_role("button", name="Anonymize", exact=True).click()
        expect(dialog.get_by_role("status")).to_have_text(
            "Done: 4 instances anonymized into 1 new study.", timeout=60_000
        )
        expect(dialog.locator("#oa-new-copies li")).to_have_count(1)
        steps.shot("links-refused")
    finally:
        server.stop()
