"""Redaction rules as data: which instances (a condition on their attributes) get which rectangles blacked out, and
whether text is looked for; read from JSON rule files (``profiles/pixel-redaction/README.md``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache
from pathlib import Path

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from orthanc_anonymizer.deid.profile_files import CHECKOUT_PROFILES_DIRECTORY, SHIPPED_DIRECTORY
from orthanc_anonymizer.errors import ProfileError

SHIPPED_RULES_DIRECTORY = SHIPPED_DIRECTORY / "pixel-redaction"
"""The starter rules shipped with the package (``orthanc_anonymizer/profiles/pixel-redaction/``)."""
SITE_RULES_DIRECTORY = CHECKOUT_PROFILES_DIRECTORY / "pixel-redaction"
"""A site's own rules, in the checkout's ``profiles/pixel-redaction/``: used after the starter rules."""

_RULE_KEYS = {"Name", "Description", "Match", "Regions", "Ocr"}
_REGION_KEYS = {"Left", "Top", "Width", "Height"}
_FILE_KEYS = {"Description", "Rules"}


@dataclass(frozen=True)
class Extent:
    """A coordinate or size: pixels, or a percentage of the image's width or height."""

    value: float
    percent: bool = False

    def pixels(self, size: int) -> int:
        return round(self.value * size / 100) if self.percent else int(self.value)

    @classmethod
    def parse(cls, value: object, where: str) -> Extent:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ProfileError(f'{where}: expected pixels (a whole number) or a percentage ("10%"), not {value!r}')
        if isinstance(value, int):
            if value < 0:
                raise ProfileError(f"{where}: negative pixels {value}")
            return cls(value)
        text = value.strip()
        if not text.endswith("%"):
            raise ProfileError(f'{where}: expected pixels (a whole number) or a percentage ("10%"), not {value!r}')
        try:
            percent = float(text[:-1])
        except ValueError:
            raise ProfileError(f"{where}: bad percentage {value!r}") from None
        if not 0 <= percent <= 100:
            raise ProfileError(f"{where}: percentage {value!r} outside 0% to 100%")
        return cls(percent, True)


@dataclass(frozen=True)
class Region:
    """A rectangle to black out: left and width against Columns, top and height against Rows."""

    left: Extent
    top: Extent
    width: Extent
    height: Extent

    def box(self, rows: int, columns: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in pixels, clipped to the image (right and bottom exclusive)."""
        left = min(self.left.pixels(columns), columns)
        top = min(self.top.pixels(rows), rows)
        return left, top, min(left + self.width.pixels(columns), columns), min(top + self.height.pixels(rows), rows)


@dataclass(frozen=True)
class Criterion:
    """One attribute condition: the attribute's value matches one of ``patterns`` (``*`` and ``?`` wildcards,
    case-insensitive; a multi-valued attribute is matched as its values joined by ``\\``; absent is empty)."""

    keyword: str
    tag: int
    patterns: tuple[str, ...]

    def matches(self, dataset: Dataset) -> bool:
        text = attribute_text(dataset, self.tag)
        return any(_pattern(pattern).fullmatch(text) for pattern in self.patterns)


@dataclass(frozen=True)
class RedactionRule:
    """Regions to black out, and whether to look for text, for the instances whose attributes match.

    In the spirit of RSNA CTP's DicomPixelAnonymizer scripts: a condition on attributes, then rectangles. Every
    criterion must hold (an empty ``match`` selects every image).
    """

    name: str
    match: tuple[Criterion, ...] = ()
    regions: tuple[Region, ...] = ()
    ocr: bool = False
    description: str = ""
    source: str = ""

    def matches(self, dataset: Dataset) -> bool:
        return all(criterion.matches(dataset) for criterion in self.match)


def parse_redaction_rules(text: str, source: str) -> tuple[RedactionRule, ...]:
    """The rules of one JSON rule file (see ``profiles/pixel-redaction/README.md``).

    ``{"Description": "...", "Rules": [...]}`` or a bare list of rules. Raises :class:`ProfileError` naming
    ``source``, the rule (``Rules[i]``, from 0) and the bad part.
    """
    try:
        value = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as error:
        raise ProfileError(f"{source}, line {error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(value, dict):
        _check_keys(value, _FILE_KEYS, source, "the rule file")
        value = value.get("Rules", [])
    if not isinstance(value, list):
        raise ProfileError(f"{source}: expected a list of rules or an object with Rules")
    return tuple(_parse_rule(item, f"{source}: Rules[{index}]", source) for index, item in enumerate(value))


def load_redaction_rules(directory: Path) -> tuple[RedactionRule, ...]:
    """Every rule of every ``*.json`` file in ``directory``, files in name order; :class:`ProfileError` else."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ProfileError(f"pixel redaction rules directory {directory} does not exist or is not a directory")
    rules: list[RedactionRule] = []
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(f"{path}: cannot read ({type(error).__name__})") from None
        rules.extend(parse_redaction_rules(text, str(path)))
    return tuple(rules)


@lru_cache(maxsize=1)
def shipped_redaction_rules() -> tuple[RedactionRule, ...]:
    """The starter rules, then the site's own in the checkout's ``profiles/pixel-redaction/`` if any; read once."""
    site = load_redaction_rules(SITE_RULES_DIRECTORY) if SITE_RULES_DIRECTORY.is_dir() else ()
    return load_redaction_rules(SHIPPED_RULES_DIRECTORY) + site


def _check_keys(value: Mapping[str, object], known: set[str], where: str, what: str) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r} in {what}; known keys: {', '.join(sorted(known))}")


def _parse_rule(item: object, where: str, source: str) -> RedactionRule:
    if not isinstance(item, dict):
        raise ProfileError(f"{where}: expected a rule object")
    _check_keys(item, _RULE_KEYS, where, "a rule")
    name = item.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise ProfileError(f"{where}: a rule needs a Name")
    description = item.get("Description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{where}: Description must be a string")
    ocr = item.get("Ocr", False)
    if not isinstance(ocr, bool):
        raise ProfileError(f"{where}: Ocr must be true or false")
    match = item.get("Match", {})
    if not isinstance(match, dict):
        raise ProfileError(f'{where}: Match must be an object {{"Keyword": pattern}}')
    criteria = tuple(_parse_criterion(keyword, value, f"{where}: Match.{keyword}") for keyword, value in match.items())
    regions = item.get("Regions", [])
    if not isinstance(regions, list):
        raise ProfileError(f"{where}: Regions must be a list of rectangles")
    parsed_regions = tuple(_parse_region(region, f"{where}: Regions[{index}]") for index, region in enumerate(regions))
    if not parsed_regions and not ocr:
        raise ProfileError(f"{where}: a rule needs Regions or Ocr true, else it does nothing")
    return RedactionRule(name.strip(), criteria, parsed_regions, ocr, description, source)


def _parse_criterion(keyword: str, value: object, where: str) -> Criterion:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ProfileError(f"{where}: unknown attribute keyword {keyword!r}")
    values = value if isinstance(value, list) else [value]
    patterns = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ProfileError(f"{where}: expected a text pattern, a number or a list of them, not {item!r}")
        patterns.append(str(item))
    if not patterns:
        raise ProfileError(f"{where}: an empty list matches nothing")
    return Criterion(keyword, tag, tuple(patterns))


def _parse_region(value: object, where: str) -> Region:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected {{Left, Top, Width, Height}}")
    _check_keys(value, _REGION_KEYS, where, "a region")
    missing = [key for key in ("Left", "Top", "Width", "Height") if key not in value]
    if missing:
        raise ProfileError(f"{where}: missing {missing[0]}")
    return Region(*(Extent.parse(value[key], f"{where}.{key}") for key in ("Left", "Top", "Width", "Height")))


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(translate(text.strip()), re.IGNORECASE | re.DOTALL)


def attribute_text(dataset: Dataset, tag: int) -> str:
    element = dataset.get(tag)
    if element is None or element.value is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Iterable):
        return "\\".join(str(item).strip() for item in value)
    return str(value).strip()
