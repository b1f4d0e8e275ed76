"""The explorers' side: the "Anonymize (PS3.15)" dialog (``dialog.js``), its button in Orthanc Explorer
(``explorer.js``) and the plugin's own page for Orthanc Explorer 2's buttons (``anonymize.html`` + ``page.js``).

The glue hands :func:`explorer_javascript` to ``orthanc.ExtendOrthancExplorer``; Orthanc then serves it to the
explorer as ``/plugins/explorer.js``. It serves :func:`ui_file` under ``/anonymizer/ui/``. No ``orthanc`` here: the
files are plain text, built from package data; ``dialog.js`` is the one source of the dialog for both.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from orthanc_anonymizer.deid.profiles import Option

OPTIONS_PLACEHOLDER = "[] /*@@ANONYMIZER_OPTIONS@@*/"

# The files under /anonymizer/ui/, with their content types.
UI_FILES = {
    "anonymize.html": "text/html; charset=utf-8",
    "dialog.js": "text/javascript; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
}


def option_descriptions() -> list[dict[str, str]]:
    """The PS3.15 options as the dialog lists them: name, title (the CID 7050 code meaning) and one-line
    explanation, in the standard's column order."""
    return [
        {"Name": option.value, "Title": option.code[1].removesuffix(" Option"), "Explanation": option.explanation}
        for option in Option
    ]


def _package_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def dialog_javascript() -> str:
    """The dialog, shared by both explorers, with the PS3.15 options in it."""
    source = _package_text("dialog.js")
    if OPTIONS_PLACEHOLDER not in source:
        raise RuntimeError(f"dialog.js: the placeholder {OPTIONS_PLACEHOLDER} is missing")
    return source.replace(OPTIONS_PLACEHOLDER, json.dumps(option_descriptions(), ensure_ascii=False), 1)


@lru_cache(maxsize=1)
def explorer_javascript() -> str:
    """The script that adds the button, the dialog and the original/copy links to Orthanc Explorer 1.x."""
    return dialog_javascript() + "\n" + _package_text("explorer.js")


@lru_cache(maxsize=len(UI_FILES))
def ui_file(name: str) -> tuple[bytes, str] | None:
    """``/anonymizer/ui/<name>``: its bytes and content type, or None for a name that is not one of the page's."""
    content_type = UI_FILES.get(name)
    if content_type is None:
        return None
    text = dialog_javascript() if name == "dialog.js" else _package_text(name)
    return text.encode("utf-8"), content_type
