"""The script handed to ``orthanc.ExtendOrthancExplorer``: built from package data, no browser needed."""

from __future__ import annotations

import json
import re

from orthanc_anonymizer.explorer import OPTIONS_PLACEHOLDER, explorer_javascript, option_descriptions
from orthanc_anonymizer.profiles import Option


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
