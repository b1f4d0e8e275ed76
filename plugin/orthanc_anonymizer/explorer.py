"""The Orthanc Explorer extension: the "Anonymize (PS3.15)" button and its dialog (``explorer.js``).

The glue hands :func:`explorer_javascript` to ``orthanc.ExtendOrthancExplorer``; Orthanc then serves it to the
explorer as ``/plugins/explorer.js``. No ``orthanc`` here: the script is plain text, built from package data.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from .profiles import Option

OPTIONS_PLACEHOLDER = "[] /*@@ANONYMIZER_OPTIONS@@*/"


def option_descriptions() -> list[dict[str, str]]:
    """The PS3.15 options as the dialog lists them: name, title (the CID 7050 code meaning) and one-line
    explanation, in the standard's column order."""
    return [
        {"Name": option.value, "Title": option.code[1].removesuffix(" Option"), "Explanation": option.explanation}
        for option in Option
    ]


@lru_cache(maxsize=1)
def explorer_javascript() -> str:
    """The script that adds the button, the dialog and the original/copy links to Orthanc Explorer 1.x."""
    source = resources.files(__package__).joinpath("explorer.js").read_text(encoding="utf-8")
    if OPTIONS_PLACEHOLDER not in source:
        raise RuntimeError(f"explorer.js: the placeholder {OPTIONS_PLACEHOLDER} is missing")
    return source.replace(OPTIONS_PLACEHOLDER, json.dumps(option_descriptions(), ensure_ascii=False), 1)
