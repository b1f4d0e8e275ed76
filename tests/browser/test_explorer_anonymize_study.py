"""A radiographer in Orthanc Explorer: open a study, "Anonymize (PS3.15)", choose options, preview, anonymize, land on
the new study, follow the link back to the original. Open, with authentication, and behind a path-prefix proxy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser_support import PASSWORD, USER, Steps, study_generator, upload_study
from playwright.sync_api import expect
from pydicom.uid import generate_uid

from orthanc_anonymizer.server.explorer import option_descriptions

pytestmark = pytest.mark.browser

ORIGINAL_NAME = "Testperson^Vincenzo"
NEW_NAME = "Research^Subject01"
PROJECT = "EXPLORER-TRIAL"


def study_count(server: Any) -> int:
    return len(server.json("/studies"))


def record_status_changes(page: Any) -> None:
    """From now on, ``window.oaStatuses`` lists each status line of the dialog with the progress bar's value (null
    while hidden): the explorer moves to the new resource by changing the hash, so the list survives."""
    page.evaluate(
        """() => {
          window.oaStatuses = [];
          const status = document.getElementById('oa-status');
          new MutationObserver(() => {
            const bar = document.querySelector('.oa-progress');
            const shown = bar && bar.style.display !== 'none';
            window.oaStatuses.push([status.textContent, shown ? bar.getAttribute('aria-valuenow') : null]);
          }).observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )


def anonymize_in_the_explorer(page: Any, base: str, server: Any, study: str, steps: Steps) -> str:
    """The whole path through the explorer; returns the new study's Orthanc ID."""
    page.goto(f"{base}/app/explorer.html#study?uuid={study}")
    ours = page.get_by_role("button", name="Anonymize (PS3.15)", exact=True)
    expect(ours).to_be_visible()
    expect(page.locator("#study-anonymize")).to_have_text("Anonymize")  # Orthanc's own, still there, beside ours
    expect(page.locator("#study-info")).to_contain_text(ORIGINAL_NAME)
    steps.shot("study-page")

    ours.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this study (DICOM PS3.15)")
    profile_names = [profile["Name"] for profile in server.json("/anonymizer/profiles")]
    expect(dialog.locator("#oa-profile option")).to_have_text(profile_names)
    expect(dialog.get_by_label("Profile")).to_have_value("basic")
    expect(dialog).to_contain_text("PS3.15 Basic Application Level Confidentiality Profile")
    options = option_descriptions()
    assert len(options) >= 10
    expect(dialog.locator("input.oa-option-box")).to_have_count(len(options))
    for option in options:
        box = dialog.get_by_label(option["Title"], exact=False).first
        expect(box).not_to_be_checked()
        expect(dialog.get_by_text(option["Explanation"], exact=True)).to_be_visible()
    expect(dialog.get_by_label("Keep original")).to_be_checked()

    dialog.get_by_label("Retain Device Identity").check()
    dialog.get_by_label("New PatientName (optional)").fill(NEW_NAME)
    dialog.get_by_label("Project (optional)").fill(PROJECT)
    steps.shot("dialog")
    steps.shot_of(page.locator(".oa-dialog"), "dialog-alone")

    before = study_count(server)
    dialog.get_by_role("button", name="Preview").click()
    table = dialog.locator("#oa-preview-table")
    expect(table).to_be_visible(timeout=60_000)

    def row(keyword: str) -> Any:
        return table.locator(f'tr[data-keyword="{keyword}"]')

    expect(row("PatientName")).to_contain_text("replaced")
    expect(row("PatientName")).to_contain_text("by a pseudonym, or the value you gave")
    expect(row("StationName")).to_contain_text("kept")  # Retain Device Identity
    expect(row("InstitutionName")).to_contain_text("removed")
    expect(row("AccessionNumber")).to_contain_text("emptied")
    expect(row("StudyInstanceUID")).to_contain_text("new UID")
    expect(dialog.locator("#oa-summary")).to_contain_text("replaced")
    expect(dialog).to_contain_text("4 instances, nothing stored")
    assert NEW_NAME not in table.inner_text() and ORIGINAL_NAME not in table.inner_text(), "values are never shown"
    steps.shot("preview")
    assert study_count(server) == before, "the preview stored nothing"

    record_status_changes(page)
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(page).not_to_have_url(re.compile(study), timeout=60_000)
    statuses = page.evaluate("window.oaStatuses")
    assert statuses[0] == ["Anonymizing…", "0"], statuses
    assert statuses[-1] == ["Done: 4 instances anonymized. Opening the new study…", "100"], statuses
    match = re.search(r"#study\?uuid=([0-9a-f-]+)$", page.url)
    assert match, page.url
    new_study = match.group(1)
    expect(dialog).to_have_count(0)
    expect(page.locator("#study-info")).to_contain_text(NEW_NAME)  # the explorer's own panel, now the copy's
    expect(page.locator("#study-info")).not_to_contain_text(ORIGINAL_NAME)
    original_link = page.get_by_role("link", name="Original study")
    expect(original_link).to_be_visible()
    expect(page.locator("#oa-study-profile")).to_have_text(re.compile(r"^Profile basic, options RetainDeviceIdent"))
    steps.shot("new-study")
    assert server.get(f"/studies/{new_study}/metadata/AnonymizedFromResource").text == study
    assert json.loads(server.get(f"/studies/{new_study}/metadata/AnonymizationProfile").text)["Project"] == PROJECT
    assert study_count(server) == before + 1
    assert server.json(f"/studies/{study}/statistics")["CountInstances"] == 4, "the original is kept"

    original_link.click()
    expect(page).to_have_url(re.compile(f"#study\\?uuid={study}$"))
    expect(page.locator("#study-info")).to_contain_text(ORIGINAL_NAME)
    expect(page.locator("#oa-study-links")).to_contain_text("Anonymized copies (1)")
    copy = page.locator(f'a.oa-copy[href$="{new_study}"]')
    expect(copy).to_contain_text(NEW_NAME)
    expect(page.get_by_role("link", name="Original study")).to_have_count(0)
    steps.shot("original-with-its-copy")
    return new_study


def test_anonymize_a_study_from_its_page_and_come_back(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    study = upload_study(open_orthanc)
    page = new_page()
    anonymize_in_the_explorer(page, open_orthanc.url, open_orthanc, study, Steps(page, steps_folder))


def test_with_authentication_the_browser_credentials_are_used(
    auth_orthanc: Any, new_page: Any, steps_folder: Path
) -> None:
    study = upload_study(auth_orthanc)
    stranger = new_page()
    assert stranger.request.get(f"{auth_orthanc.url}/app/explorer.html").status == 401, "authentication is on"
    assert stranger.request.get(f"{auth_orthanc.url}/anonymizer/profiles").status == 401

    page = new_page(http_credentials={"username": USER, "password": PASSWORD})
    new_study = anonymize_in_the_explorer(page, auth_orthanc.url, auth_orthanc, study, Steps(page, steps_folder))

    records = auth_orthanc.json("/anonymizer/audit")
    made = [record for record in records if record["Event"] == "anonymize" and record["Result"] == new_study]
    assert [record["User"] for record in made] == [USER], "the anonymization ran as the logged-in user"


def test_behind_a_reverse_proxy_under_a_path_prefix(
    open_orthanc: Any, prefix_proxy: Any, new_page: Any, steps_folder: Path
) -> None:
    study = upload_study(open_orthanc)
    page = new_page()
    anonymize_in_the_explorer(page, prefix_proxy.url, open_orthanc, study, Steps(page, steps_folder))

    asked = prefix_proxy.requests
    assert any(path.startswith("/pacs/anonymizer/studies/") for path in asked)
    assert any(path.startswith("/pacs/anonymizer/jobs/") for path in asked)
    outside = [path for path in asked if not path.startswith("/pacs/") and path != "/favicon.ico"]
    assert outside == [], "every request stays under the prefix"


def test_refused_settings_are_reported_in_words(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    study = upload_study(open_orthanc)
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{open_orthanc.url}/app/explorer.html#study?uuid={study}")
    page.get_by_role("button", name="Anonymize (PS3.15)", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    # A profile that was removed from the server after the dialog listed it.
    page.evaluate("$('#oa-profile').append($('<option>').val('withdrawn-profile').text('withdrawn-profile'))")
    dialog.get_by_label("Profile").select_option("withdrawn-profile")
    before = study_count(open_orthanc)
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    status = dialog.get_by_role("status")
    expect(status).to_contain_text("Orthanc refused these settings")
    expect(status).to_contain_text("withdrawn-profile")
    steps.shot("refused")
    expect(page).to_have_url(re.compile(f"#study\\?uuid={study}$"))
    assert study_count(open_orthanc) == before

    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)


def test_a_patient_from_the_patient_page(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    study = upload_study(open_orthanc, "Testperson^Philomena", "PID-BROWSER-PATIENT")
    patient = open_orthanc.json(f"/studies/{study}")["ParentPatient"]
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{open_orthanc.url}/app/explorer.html#patient?uuid={patient}")
    expect(page.locator("#patient-anonymize")).to_have_text("Anonymize")
    page.get_by_role("button", name="Anonymize (PS3.15)", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this patient (DICOM PS3.15)")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    page.keyboard.press("Escape")  # closes it
    expect(dialog).to_have_count(0)

    page.get_by_role("button", name="Anonymize (PS3.15)", exact=True).click()
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_label("New PatientID (optional)").fill("RESEARCH-0042")
    steps.shot("dialog")
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(page).not_to_have_url(re.compile(patient), timeout=60_000)
    expect(page).to_have_url(re.compile(r"#patient\?uuid=[0-9a-f-]+$"))
    expect(page.locator("#patient-info")).to_contain_text("RESEARCH-0042")
    expect(page.locator("#oa-patient-original")).to_have_text("Original patient")
    expect(page.locator("#oa-patient-profile")).to_contain_text("Profile basic, no options")
    steps.shot("new-patient")
    page.locator("#oa-patient-original").click()
    expect(page).to_have_url(re.compile(f"#patient\\?uuid={patient}$"))
    expect(page.locator("a.oa-copy")).to_have_count(1)
    expect(page.locator("a.oa-copy")).to_contain_text("RESEARCH-0042")
    steps.shot("original-patient")


def test_a_series_with_a_named_profile_and_without_keeping_the_original(
    open_orthanc: Any, new_page: Any, steps_folder: Path
) -> None:
    study = upload_study(open_orthanc)
    series = open_orthanc.json(f"/studies/{study}")["Series"][0]
    profile = next(p for p in open_orthanc.json("/anonymizer/profiles") if p["Name"] == "research-longitudinal")
    assert profile["Options"], "the shipped profile carries options"
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{open_orthanc.url}/app/explorer.html#series?uuid={series}")
    page.get_by_role("button", name="Anonymize (PS3.15)", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this series (DICOM PS3.15)")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_label("Profile").select_option("research-longitudinal")
    expect(dialog).to_contain_text(profile["Description"])
    for name in profile["Options"]:  # the profile applies them anyway: ticked and locked
        box = dialog.locator(f"#oa-option-{name}")
        expect(box).to_be_checked()
        expect(box).to_be_disabled()
    expect(dialog.locator("label.oa-from-profile")).to_have_count(len(profile["Options"]))
    warning = dialog.get_by_text("the original is deleted once every anonymized instance is stored and verified")
    expect(warning).to_be_hidden()
    dialog.get_by_label("Keep original").uncheck()
    expect(warning).to_be_visible()
    steps.shot("dialog")

    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(page).not_to_have_url(re.compile(series), timeout=60_000)
    match = re.search(r"#series\?uuid=([0-9a-f-]+)$", page.url)
    assert match, page.url
    expect(page.locator("#oa-series-profile")).to_contain_text("Profile research-longitudinal, options")
    expect(page.locator("#oa-series-original")).to_have_text("Original series: deleted after anonymization")
    steps.shot("new-series")
    assert open_orthanc.get(f"/series/{series}").status_code == 404, "the original series is gone"
    assert len(open_orthanc.json(f"/series/{match.group(1)}")["Instances"]) == 2


def test_a_deleted_study_is_reported_in_words(open_orthanc: Any, new_page: Any, steps_folder: Path) -> None:
    study = upload_study(open_orthanc)
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{open_orthanc.url}/app/explorer.html#study?uuid={study}")
    page.get_by_role("button", name="Anonymize (PS3.15)", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    assert open_orthanc.session.delete(f"{open_orthanc.url}/studies/{study}").status_code == 200  # someone else
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    expect(dialog.get_by_role("status")).to_have_text(
        "This study no longer exists in Orthanc: it was deleted meanwhile."
    )
    steps.shot("deleted")


def test_instances_that_fail_are_listed_and_the_incomplete_copy_opens_on_request(
    open_orthanc: Any, new_page: Any, steps_folder: Path
) -> None:
    # The second of three images names the patient in Manufacturer, which the basic profile keeps: the residual-PHI
    # check refuses that copy, the other two are stored.
    patient = study_generator.Patient(name="Testperson^Saltimbocca", id="PID-BROWSER-FAIL")
    study_uid, series_uid = generate_uid(), generate_uid()
    files = [
        study_generator.to_bytes(study_generator.make_instance(patient, study_uid, series_uid, 1, number, **extra))
        for number, extra in ((1, {}), (2, {"Manufacturer": "Saltimbocca Testperson Imaging"}), (3, {}))
    ]
    study = open_orthanc.upload_study(files)
    page = new_page()
    steps = Steps(page, steps_folder)
    page.goto(f"{open_orthanc.url}/app/explorer.html#study?uuid={study}")
    page.get_by_role("button", name="Anonymize (PS3.15)", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#oa-profile option")).not_to_have_count(0)
    dialog.get_by_role("button", name="Anonymize", exact=True).click()
    status = dialog.get_by_role("status")
    expect(status).to_contain_text("The copy was made, but incomplete.", timeout=60_000)
    expect(status).to_contain_text("1 of 3 instances could not be anonymized; their originals are untouched")
    expect(status).to_contain_text("residual PHI found at 0008,0070")
    expect(status).not_to_contain_text("Saltimbocca")
    steps.shot("incomplete")
    expect(page).to_have_url(re.compile(f"#study\\?uuid={study}$"))  # stays until the user has read it

    dialog.get_by_role("button", name="Open the anonymized study").click()
    expect(page).not_to_have_url(re.compile(study))
    expect(page.locator("#oa-study-original")).to_have_text("Original study")
    expect(page.locator("#list-series")).to_contain_text("2")  # the two stored images
    steps.shot("incomplete-copy")


def test_the_dialog_closes_when_the_explorer_moves_to_another_page(open_orthanc: Any, new_page: Any) -> None:
    study = upload_study(open_orthanc, "Testperson^Wilhelmina", "PID-BROWSER-MOVES")
    patient = open_orthanc.json(f"/studies/{study}")["ParentPatient"]
    page = new_page()
    page.goto(f"{open_orthanc.url}/app/explorer.html#patient?uuid={patient}")
    expect(page.locator("#patient-info")).to_contain_text("Wilhelmina")
    page.goto(f"{open_orthanc.url}/app/explorer.html#study?uuid={study}")
    expect(page.locator("#study-info")).to_contain_text("Wilhelmina")
    page.locator("#study-anonymize-ps315").click()  # each page of the explorer has its own button
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anonymize this study (DICOM PS3.15)")

    page.go_back()  # the explorer moves back to the patient page (a jQuery Mobile page change)
    expect(page).to_have_url(re.compile(f"#patient\\?uuid={patient}$"))
    expect(dialog).to_have_count(0)
    expect(page.locator("#study")).not_to_have_class(re.compile(r"ui-page-active"))
    expect(page.locator("#patient")).to_have_class(re.compile(r"ui-page-active"))
    expect(page.locator("#patient-info")).to_contain_text("Wilhelmina")
    expect(page.locator(".oa-overlay")).to_have_count(0)
    # Nothing is left over the patient page: its own controls take clicks (this one opens the patient's dialog).
    page.locator("#patient-anonymize-ps315").click(timeout=10_000)
    expect(dialog).to_contain_text("Anonymize this patient (DICOM PS3.15)")
