"""The script handed to ``orthanc.ExtendOrthancExplorer``: built from package data, no browser needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orthanc_anonymizer.deid.profiles import Option
from orthanc_anonymizer.server.explorer import (
    OPTIONS_PLACEHOLDER,
    UI_FILES,
    explorer_javascript,
    option_descriptions,
    ui_file,
)


def test_the_script_lists_every_option_with_its_explanation() -> None:
    script = explorer_javascript()
    assert OPTIONS_PLACEHOLDER not in script
    match = re.search(r"var OPTIONS = (\[.*?\]);\n", script)
    assert match, "the options are embedded"
    embedded = json.loads(match.group(1))
    assert [item["Name"] for item in embedded] == [option.value for option in Option]
    for item in embedded:
        option = Option(item["Name"])
        assert item["Explanation"] == option.explanation
        assert item["Title"] and not item["Title"].endswith("Option")
    assert embedded == option_descriptions()


def test_the_script_uses_only_relative_urls_and_same_origin_requests() -> None:
    script = explorer_javascript()
    assert "Anonymize (PS3.15)" in script
    # Behind a reverse proxy under a path, an absolute "/anonymizer/..." or a full http:// URL would miss Orthanc.
    assert not re.search(r"""['"]/(anonymizer|studies|series|patients|app)/""", script)
    assert "http://" not in script and "https://" not in script
    assert "fetch(" not in script and "withCredentials" not in script


CONFIGURATIONS = [
    Path(__file__).resolve().parents[2] / "orthanc-config" / name for name in ("orthanc.json", "docker/orthanc.json")
]


def test_the_page_for_orthanc_explorer_2_is_relative_and_carries_the_one_dialog() -> None:
    for name in UI_FILES:
        found = ui_file(name)
        assert found is not None, name
        text = found[0].decode("utf-8")
        assert not re.search(r"""['"]/(anonymizer|studies|series|patients|app|ui)/""", text), name
        assert "http://" not in text and "https://" not in text and "fetch(" not in text, name
    page = ui_file("anonymize.html")
    assert page is not None
    scripts = re.findall(r'<script src="([^"]+)"', page[0].decode("utf-8"))
    assert scripts == ["../../app/libs/jquery.min.js", "dialog.js", "page.js"]
    dialog = ui_file("dialog.js")
    assert dialog is not None and dialog[0].decode("utf-8") in explorer_javascript(), "one dialog for both explorers"
    assert ui_file("explorer.js") is None and ui_file("../explorer.py") is None


@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_shipped_configurations_declare_the_oe2_buttons(configuration: Path) -> None:
    options = json.loads(configuration.read_text())["OrthancExplorer2"]["UiOptions"]
    assert options["EnableAnonymization"] is False, "OE2's core anonymizer is hidden"
    buttons = options["CustomButtons"]
    expected = {"study": "study={UUID}", "series": "series={UUID}", "bulk-studies": "studies={CommaSeparatedUUIDs}"}
    assert set(buttons) == set(expected)
    for level, query in expected.items():
        (button,) = buttons[level]
        assert button["HttpMethod"] == "GET" and button["Icon"].startswith("bi ") and button["Tooltip"]
        # Relative to OE2's /ui/app/: the plugin's page under the same prefix, whatever the proxy puts before it.
        assert button["Url"] == f"../../anonymizer/ui/anonymize.html?{query}"
