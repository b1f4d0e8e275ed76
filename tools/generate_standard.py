"""Generate the package's copy of the DICOM standard tables from ``shared/``.

Reads the PS3.15 Annex E tables (``shared/ps3.15``) and the PS3.3 IOD, module and attribute tables
(``shared/ps3.3``), and writes compact JSON data files into ``plugin/orthanc_anonymizer/deid/standard/``:

* ``table_e1_1.json``: Table E.1-1, every row, its Basic profile action and its option columns.
* ``safe_private.json``: Table E.3.10-1, the safe private attributes.
* ``action_codes.json``: Table E.1-1a, the action codes and their definitions.
* ``attribute_types.json``: for each SOP class, the PS3.3 type (1, 1C, 2, 2C, 3) of each attribute of
  Table E.1-1 whose action is compound, keyed by its path of sequence keywords. Only what resolving the
  compound codes needs is kept, so the 22 MB PS3.3 map stays out of the package.

Run with ``make standard`` (or ``python tools/generate_standard.py ../shared``); the output is committed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydicom.datadict import keyword_for_tag

OUT = Path(__file__).resolve().parent.parent / "plugin" / "orthanc_anonymizer" / "deid" / "standard"
EDITION = "2026d"
OPTION_COLUMNS = {
    "retain_safe_private": "RetainSafePrivate",
    "retain_uids": "RetainUIDs",
    "retain_device_ident": "RetainDeviceIdent",
    "retain_institution_ident": "RetainInstitutionIdent",
    "retain_patient_chars": "RetainPatientChars",
    "retain_long_full_dates": "RetainLongFullDates",
    "retain_long_modif_dates": "RetainLongModifDates",
    "clean_desc": "CleanDesc",
    "clean_struct_cont": "CleanStructdCont",
    "clean_graph": "CleanGraph",
}
COMPOUND = {"Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
# Strongest requirement first: where one attribute appears in several modules of an IOD, the strongest wins.
TYPE_ORDER = ["1", "1C", "2", "2C", "3"]
TAG_RE = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def normalise_tag(text: str) -> str:
    """``(0010,0010)`` -> ``0010,0010``; patterns keep their ``x`` in lower case; the private row stays as words."""
    match = TAG_RE.match(text.strip())
    if not match:
        return text.strip()
    return f"{match.group(1)},{match.group(2)}".upper().replace("X", "x")


def table_e1_1(shared: Path) -> list[dict[str, Any]]:
    rows = []
    for row in read_csv(shared / "ps3.15" / "table-e1-1-extended.csv"):
        tag = normalise_tag(row["tag"])
        keyword = ""
        if TAG_RE.match(row["tag"]) and "x" not in tag:
            keyword = keyword_for_tag(int(tag.replace(",", ""), 16)) or ""
        rows.append(
            {
                "tag": tag,
                "name": row["name"],
                "keyword": keyword,
                "retired": row["retired"] == "Y",
                "in_std_comp_iod": row["in_std_comp_iod"] == "Y",
                "basic": row["basic"],
                "options": {name: row[column] for column, name in OPTION_COLUMNS.items() if row[column]},
            }
        )
    return rows


def safe_private(shared: Path) -> list[dict[str, str]]:
    return [
        {
            "tag": normalise_tag(row["tag"]),
            "private_creator": row["private_creator"],
            "vr": row["vr"],
            "vm": row["vm"],
        }
        for row in read_csv(shared / "ps3.15" / "safe-private.csv")
    ]


def attribute_types(shared: Path, table: list[dict[str, Any]]) -> dict[str, Any]:
    """Per SOP class UID: {"Seq/Keyword": type} for the compound-action attributes of Table E.1-1."""
    wanted = {row["keyword"] for row in table if row["keyword"] and row["basic"] in COMPOUND}
    ps33 = shared / "ps3.3"
    modules = json.loads((ps33 / "module_attribute_map.json").read_text(encoding="utf-8"))
    iods = json.loads((ps33 / "iod_module_map.json").read_text(encoding="utf-8"))
    sop_classes = json.loads((ps33 / "sop_class_iod_map.json").read_text(encoding="utf-8"))
    per_iod: dict[str, dict[str, str]] = {}
    for iod, iod_modules in iods.items():
        types: dict[str, str] = {}
        for module in iod_modules:
            for attribute in modules.get(module["key"], []):
                if attribute["keyword"] not in wanted:
                    continue
                path = "/".join([*attribute["path"], attribute["keyword"]])
                new = attribute["type"]
                old = types.get(path)
                if new in TYPE_ORDER and (old is None or TYPE_ORDER.index(new) < TYPE_ORDER.index(old)):
                    types[path] = new
        per_iod[iod] = dict(sorted(types.items()))
    return {
        "iods": per_iod,
        "sop_classes": dict(sorted(sop_classes.items())),
    }


def write_json(name: str, data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    (OUT / name).write_text(text + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    shared = Path(argv[1] if len(argv) > 1 else "../shared").resolve()
    table = table_e1_1(shared)
    write_json("table_e1_1.json", {"edition": EDITION, "rows": table})
    write_json("safe_private.json", {"edition": EDITION, "rows": safe_private(shared)})
    codes = read_csv(shared / "ps3.15" / "action-codes.csv")
    write_json("action_codes.json", {"edition": EDITION, "codes": codes})
    write_json("attribute_types.json", {"source": "PS3.3 via highdicom 0.28.2", **attribute_types(shared, table)})
    inputs = sorted((shared / "ps3.15").glob("*.csv")) + sorted((shared / "ps3.3").glob("*.json"))
    sums = "\n".join(f"{sha256(p)}  {p.parent.name}/{p.name}" for p in inputs)
    (OUT / "INPUTS.sha256").write_text(sums + "\n", encoding="utf-8")
    print(f"wrote {len(table)} rows of Table E.1-1 ({EDITION}) to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
