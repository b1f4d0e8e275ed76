"""Custom rules and named profiles as data: CSV, JSON and XML, from a file or a string.

Three formats say the same thing, a list of rules ``tag pattern -> action`` (PS3.15 Table E.1-1a codes); JSON and
XML can also say a whole profile (description, base profile, options, rules). ``profiles/README.md`` shows each
format with examples.

CSV
    One rule a line, ``TagPattern;Action`` (``0010,0010;Z``, ``(0010,0010);Z``, ``50xx,xxxx;X``), an optional
    third column for a comment (``0010,1010;K;PatientAge``). Blank lines and lines starting with ``#`` are skipped;
    a first line ``Tag;Action`` is taken as a header. A CSV file holds rules only.
JSON
    ``[{"Tag": "0010,0010", "Action": "Z"}]`` (each rule may carry a ``"Comment"``), or a profile object
    ``{"Name", "Description", "Base", "Options": [...], "Rules": [...], "BurnedInAnnotation"}`` where every key is
    optional (``BurnedInAnnotation``: ``Redact``, ``Reject`` or ``Warn``, see :mod:`.pixels`).
XML
    ``<rules><rule tag="0010,0010" action="Z"/></rules>``, or a profile
    ``<profile base="basic"><description>..</description><option>CleanDesc</option><rule .../></profile>``.
    A document type declaration (and so any entity declaration) is refused: rule files need neither, and
    refusing them closes the entity-expansion attacks on XML parsers.

A file holding only rules is a profile of its own: the rules on top of ``basic``. A profile is named after its
file (``research-longitudinal.json`` is ``research-longitudinal``); a ``Name`` inside the file, if given, must say
the same. ``Base`` is ``basic`` (the default) or the name of another profile among those offered beside it (the
same directory, and the shipped profiles when they are offered), whose options and rules come first.

Where profiles are found: ``basic`` is built in; the shipped named profiles are package data
(``orthanc_anonymizer/profiles/``, :data:`SHIPPED_DIRECTORY`, read through :mod:`importlib.resources`, so an
installed wheel has them). What is offered depends on whether a profiles directory is configured
(``--profiles-dir``, ``Anonymizer.ProfilesDirectory``):

- configured: that directory's files only (``shipped=False``), as an administrator curated them;
- not configured: the shipped profiles and a site's own files in the default site folder, the checkout's
  ``profiles/`` (:data:`CHECKOUT_PROFILES_DIRECTORY`, if there is one), looked up first: a site's file named like a
  shipped profile replaces it (``shipped=True``).

Every error is a :class:`~orthanc_anonymizer.errors.ProfileError` naming the source (file or REST field), the place
(CSV and XML: ``line N``; JSON: ``Rules[i]``, counted from 0) and the bad value. Rule files carry tags and action
codes, not patient data, so quoting them is safe.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import json
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from xml.etree.ElementTree import Element, TreeBuilder

from orthanc_anonymizer.defaults import CHECKOUT
from orthanc_anonymizer.deid.profiles import (
    MAX_AGE_CAP,
    MIN_AGE_CAP,
    Action,
    BurnedInAnnotationPolicy,
    Option,
    Profile,
    Rule,
    TagPattern,
    basic_profile,
)
from orthanc_anonymizer.errors import ProfileError

FORMATS = ("csv", "json", "xml")
"""The rule formats, named as ``parse_rules`` takes them and as profile files end."""

BASIC_NAME = "basic"


def _shipped_directory() -> Path:
    # A package installed as files (a wheel, the checkout) gives its own folder; a zipped one a temporary copy that
    # lives as long as the process.
    stack = contextlib.ExitStack()
    atexit.register(stack.close)
    return stack.enter_context(resources.as_file(resources.files("orthanc_anonymizer") / "profiles"))


SHIPPED_DIRECTORY = _shipped_directory()
"""The named profiles shipped with the package (``orthanc_anonymizer/profiles/``); its ``pixel-redaction/``
subfolder holds the shipped redaction rules (:mod:`.pixels`)."""
CHECKOUT_PROFILES_DIRECTORY = CHECKOUT / "profiles"
"""The checkout's ``profiles/`` folder, the default site folder: a site's own profiles there are offered beside the
shipped ones when no profiles directory is configured, and its redaction rules in ``pixel-redaction/`` are read
(not there when the package is installed rather than run from a checkout)."""
_BASIC_IS_BUILT_IN = "the name basic belongs to the built-in PS3.15 Basic profile; rename the file"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CSV_HEADER_TAGS = {"tag", "tagpattern", "tag pattern", "pattern"}
_JSON_RULE_KEYS = {"Tag", "Action", "Comment"}
_JSON_PROFILE_KEYS = {"Name", "Description", "Base", "Options", "Rules", "BurnedInAnnotation", "AgeCap"}


@dataclass
class _Document:
    """What one rule file or string says, before its base profile is resolved."""

    rules: list[Rule] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    name: str | None = None
    description: str | None = None
    base: str = BASIC_NAME
    burned_in_annotation: BurnedInAnnotationPolicy | None = None
    """Clean Pixel Data's policy for instances declaring burned-in annotation; ``None``: the base's."""
    age_cap: int | None = None
    """Ages of this many years or more written as this many; ``None``: the base's."""
    is_profile: bool = False
    """True for a JSON object or an XML ``<profile>``; False for a bare list of rules."""


# --- parsing -------------------------------------------------------------------------------------------------------


def guess_format(text: str) -> str:
    """``xml`` for text starting with ``<``, ``json`` for ``[`` or ``{``, ``csv`` otherwise."""
    start = text.lstrip("\ufeff \t\r\n")[:1]
    if start == "<":
        return "xml"
    if start in ("[", "{"):
        return "json"
    return "csv"


def _parse_document(text: str, fmt: str, source: str) -> _Document:
    fmt = fmt.lower() or guess_format(text)
    if fmt == "csv":
        return _Document(rules=_parse_csv(text, source))
    if fmt == "json":
        try:
            value = json.loads(text.lstrip("\ufeff"))
        except json.JSONDecodeError as error:
            raise ProfileError(f"{source}, line {error.lineno}: not valid JSON ({error.msg})") from None
        except RecursionError:
            raise ProfileError(f"{source}: JSON nested too deeply for a list of rules") from None
        return _parse_json_value(value, source)
    if fmt == "xml":
        return _parse_xml(text, source)
    raise ProfileError(f"{source}: unknown rule format {fmt!r}; known formats: {', '.join(FORMATS)}")


def parse_rules(text: str, fmt: str, source: str) -> list[Rule]:
    """The custom rules written in ``text``, in order (the last matching rule wins, see :mod:`.profiles`).

    ``fmt`` is ``"csv"``, ``"json"`` or ``"xml"``, or ``""`` to guess from the first character. ``source`` names
    where the text came from (a file, a REST field) in each rule and in errors. Only lists of rules are taken
    here; a whole profile (a JSON object, an XML ``<profile>``) is refused: load it with :func:`load_profile_file`.

    Raises :class:`ProfileError` naming ``source``, the line or rule index and the bad value.
    """
    document = _parse_document(text, fmt, source)
    if document.is_profile:
        raise ProfileError(
            f"{source}: holds a whole profile, not a list of rules; give rules as "
            '[{"Tag": ..., "Action": ...}], TagPattern;Action lines or <rules>'
        )
    return document.rules


def rules_from_json(value: object, source: str) -> list[Rule]:
    """Rules from a decoded JSON value, such as the REST body's ``"Rules"``.

    ``value`` is a list of ``{"Tag", "Action"}`` objects, or a string holding CSV, JSON or XML rules (format
    guessed). Anything else, or a bad rule, raises :class:`ProfileError` naming ``source`` and the rule.
    """
    if isinstance(value, str):
        return parse_rules(value, "", source)
    if isinstance(value, list):
        return _parse_json_rules(value, source, "")
    raise ProfileError(
        f'{source}: expected a list of {{"Tag", "Action"}} objects or a string of CSV or XML rules, '
        f"not {_json_type(value)}"
    )


def _make_rule(tag: object, action: object, where: str) -> Rule:
    """A :class:`Rule` from raw tag and action text; ``where`` (``file, line 3``) prefixes any error."""
    if not isinstance(tag, str) or not tag.strip():
        raise ProfileError(f"{where}: missing tag pattern")
    if not isinstance(action, str) or not action.strip():
        raise ProfileError(f"{where}: missing action for tag {tag.strip()!r}")
    try:
        return Rule(TagPattern.parse(tag), Action.parse(action), source=where)
    except ProfileError as error:
        raise ProfileError(f"{where}: {error}") from None


def _parse_csv(text: str, source: str) -> list[Rule]:
    rules: list[Rule] = []
    seen_data = False
    # Lines are numbered as an editor shows them, so comments and blank lines are dropped before the csv module
    # splits each remaining line into fields.
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}, line {number}"
        try:
            fields = next(csv.reader([stripped], delimiter=";", skipinitialspace=True, strict=True))
        except csv.Error as error:
            raise ProfileError(f"{where}: not valid CSV ({error})") from None
        fields = [value.strip() for value in fields]
        while len(fields) > 2 and not fields[-1]:
            fields.pop()  # a trailing ";" as spreadsheets write it
        first_row = not seen_data
        seen_data = True
        if first_row and len(fields) >= 2 and fields[0].lower() in _CSV_HEADER_TAGS and fields[1].lower() == "action":
            continue
        if len(fields) < 2:
            raise ProfileError(f"{where}: expected TagPattern;Action, got {stripped!r}")
        if len(fields) > 3:
            raise ProfileError(f"{where}: expected TagPattern;Action[;Comment], got {len(fields)} fields")
        rules.append(_make_rule(fields[0], fields[1], where))
    return rules


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _parse_json_value(value: object, source: str) -> _Document:
    if isinstance(value, list):
        return _Document(rules=_parse_json_rules(value, source, ""))
    if not isinstance(value, dict):
        raise ProfileError(f"{source}: expected a list of rules or a profile object, not {_json_type(value)}")
    unknown = sorted(set(value) - _JSON_PROFILE_KEYS)
    if unknown:
        known = ", ".join(sorted(_JSON_PROFILE_KEYS))
        raise ProfileError(f"{source}: unknown key {unknown[0]!r} in the profile; known keys: {known}")
    document = _Document(is_profile=True)
    for key in ("Name", "Description", "Base", "BurnedInAnnotation"):
        if key in value and not isinstance(value[key], str):
            raise ProfileError(f"{source}: {key} must be a string, not {_json_type(value[key])}")
    document.name = value.get("Name")
    document.description = value.get("Description")
    document.base = value.get("Base", BASIC_NAME)
    if "BurnedInAnnotation" in value:
        document.burned_in_annotation = _parse_policy(value["BurnedInAnnotation"], f"{source}: BurnedInAnnotation")
    if "AgeCap" in value:
        cap = value["AgeCap"]
        if not isinstance(cap, int) or isinstance(cap, bool):
            raise ProfileError(f"{source}: AgeCap must be a whole number of years, not {_json_type(cap)}")
        document.age_cap = _check_age_cap(cap, f"{source}: AgeCap")
    options = value.get("Options", [])
    if not isinstance(options, list):
        raise ProfileError(f"{source}: Options must be a list of option names, not {_json_type(options)}")
    for index, option in enumerate(options):
        if not isinstance(option, str):
            raise ProfileError(f"{source}: Options[{index}] must be a string, not {_json_type(option)}")
        document.options.append(_parse_option(option, f"{source}: Options[{index}]"))
    rules = value.get("Rules", [])
    if not isinstance(rules, list):
        raise ProfileError(f"{source}: Rules must be a list of rules, not {_json_type(rules)}")
    document.rules = _parse_json_rules(rules, source, "Rules")
    return document


def _parse_json_rules(items: list[object], source: str, key: str) -> list[Rule]:
    rules = []
    for index, item in enumerate(items):
        where = f"{source}: {key}[{index}]"
        if not isinstance(item, dict):
            raise ProfileError(f'{where}: expected an object {{"Tag", "Action"}}, not {_json_type(item)}')
        unknown = sorted(set(item) - _JSON_RULE_KEYS)
        if unknown:
            raise ProfileError(f"{where}: unknown key {unknown[0]!r}; a rule has Tag, Action and maybe Comment")
        rules.append(_make_rule(item.get("Tag"), item.get("Action"), where))
    return rules


def _parse_policy(name: str, where: str) -> BurnedInAnnotationPolicy:
    try:
        return BurnedInAnnotationPolicy.parse(name.strip())
    except ProfileError as error:
        raise ProfileError(f"{where}: {error}") from None


def _check_age_cap(cap: int, where: str) -> int:
    if not MIN_AGE_CAP <= cap <= MAX_AGE_CAP:
        raise ProfileError(f"{where}: {cap} years; expected a number of years from {MIN_AGE_CAP} to {MAX_AGE_CAP}")
    return cap


def _parse_option(name: str, where: str) -> Option:
    try:
        return Option.parse(name.strip())
    except ProfileError as error:
        raise ProfileError(f"{where}: {error}") from None


# --- XML -----------------------------------------------------------------------------------------------------------


class _RefusedDeclaration(Exception):
    """Raised from the expat handlers to stop at a DOCTYPE or entity declaration."""


def _parse_xml_tree(text: str, source: str) -> tuple[Element, dict[int, int]]:
    """The element tree of ``text`` and each element's line (by ``id``), built by expat into a ``TreeBuilder``.

    ElementTree's own parser does not tell where an element starts, so expat feeds the standard ``TreeBuilder``
    here and records ``CurrentLineNumber`` for each element.
    """
    builder = TreeBuilder()
    lines: dict[int, int] = {}
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attributes: dict[str, str]) -> None:
        element = builder.start(tag, attributes)
        lines[id(element)] = parser.CurrentLineNumber

    def refuse(*_: object) -> None:
        raise _RefusedDeclaration

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(text.lstrip("\ufeff"), True)
    except _RefusedDeclaration:
        raise ProfileError(
            f"{source}, line {parser.CurrentLineNumber}: document type and entity declarations are not allowed"
        ) from None
    except xml.parsers.expat.ExpatError as error:
        message = xml.parsers.expat.ErrorString(error.code)
        raise ProfileError(f"{source}, line {error.lineno}: not well-formed XML ({message})") from None
    root = builder.close()
    # The elements live as long as ``root``, so their ids stay unique while ``lines`` is used.
    return root, lines


def _parse_xml(text: str, source: str) -> _Document:
    root, lines = _parse_xml_tree(text, source)

    def where(element: Element) -> str:
        return f"{source}, line {lines.get(id(element), 0)}"

    def check_attributes(element: Element, allowed: set[str]) -> None:
        unknown = sorted(set(element.attrib) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise ProfileError(
                f"{where(element)}: unknown attribute {unknown[0]!r} on <{element.tag}>; allowed: {known}"
            )

    if root.tag == "rules":
        document = _Document()
        check_attributes(root, set())
    elif root.tag == "profile":
        document = _Document(is_profile=True, name=root.get("name"), base=root.get("base", BASIC_NAME))
        check_attributes(root, {"name", "base", "burned-in-annotation", "age-cap"})
        policy = root.get("burned-in-annotation")
        if policy is not None:
            document.burned_in_annotation = _parse_policy(policy, where(root))
        cap = root.get("age-cap")
        if cap is not None:
            if not cap.strip().isdigit():
                raise ProfileError(f"{where(root)}: age-cap {cap!r}: expected a whole number of years")
            document.age_cap = _check_age_cap(int(cap), f"{where(root)}: age-cap")
    else:
        raise ProfileError(f"{where(root)}: unknown root element <{root.tag}>; expected <rules> or <profile>")
    for child in root:
        if child.tag == "rule":
            check_attributes(child, {"tag", "action", "comment"})
            document.rules.append(_make_rule(child.get("tag"), child.get("action"), where(child)))
        elif child.tag == "option" and document.is_profile:
            check_attributes(child, set())
            document.options.append(_parse_option(child.text or "", where(child)))
        elif child.tag == "description" and document.is_profile:
            check_attributes(child, set())
            if document.description is not None:
                raise ProfileError(f"{where(child)}: a second <description>; a profile has one")
            document.description = " ".join((child.text or "").split())
        else:
            allowed = "<description>, <option> and <rule>" if document.is_profile else "<rule>"
            raise ProfileError(f"{where(child)}: unknown element <{child.tag}> in <{root.tag}>; allowed: {allowed}")
    return document


# --- profiles from files -------------------------------------------------------------------------------------------


def _format_of(path: Path, text: str) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else guess_format(text)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProfileError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ProfileError(f"{path}: cannot read ({error.strerror or type(error).__name__})") from None


def load_profile_file(path: Path) -> Profile:
    """The profile in the rule file at ``path``, named after the file's stem.

    A file of rules only gives ``basic`` with those rules. A JSON or XML profile gives its base profile (``basic``
    or another profile in the same directory) with its options and rules added on top, and its description. Raises
    :class:`ProfileError` naming the file for any problem.
    """
    return _load_profile_file(Path(path), (), ())


def _load_profile_file(path: Path, seen: tuple[Path, ...], folders: tuple[Path, ...]) -> Profile:
    name = path.stem
    text = _read_text(path)
    document = _parse_document(text, _format_of(path, text), str(path))
    if document.name is not None and document.name != name:
        raise ProfileError(
            f"{path}: Name {document.name!r} differs from the file name; a profile is named after its file ({name!r})"
        )
    base = _base_profile(document.base, path, (*seen, path), folders)
    description = document.description
    if description is None:
        description = base.description if document.is_profile else f"{base.name} with the rules of {path.name}"
    try:
        return Profile(
            name=name,
            options=base.options | frozenset(document.options),
            rules=(*base.rules, *document.rules),
            description=description,
            source=str(path),
            burned_in_annotation=document.burned_in_annotation or base.burned_in_annotation,
            age_cap=document.age_cap if document.age_cap is not None else base.age_cap,
        )
    except ProfileError as error:
        raise ProfileError(f"{path}: {error}") from None


def _base_profile(base: str, path: Path, seen: tuple[Path, ...], folders: tuple[Path, ...]) -> Profile:
    if base == BASIC_NAME:
        return basic_profile()
    # Among the folders the profile was offered from (the first that has the name winning); a file outside them
    # (given by its path) in its own folder.
    parent = path.parent.resolve()
    if not any(folder.resolve() == parent for folder in folders):
        folders = (path.parent,)
    try:
        base_path = _find_in_folders(base, folders)
    except ProfileError as error:
        raise ProfileError(f"{path}: base profile: {error}") from None
    if base_path is None:
        where = " or ".join(str(folder) for folder in folders)
        raise ProfileError(f"{path}: unknown base profile {base!r}; it must be basic or a profile in {where}")
    if base_path in seen:
        chain = " -> ".join(p.stem for p in (*seen, base_path))
        raise ProfileError(f"{path}: base profiles form a loop: {chain}")
    return _load_profile_file(base_path, seen, folders)


def _profile_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ProfileError(f"profiles directory {directory} does not exist or is not a directory")
    return sorted(
        path
        for path in directory.iterdir()
        if path.suffix.lower().lstrip(".") in FORMATS and path.is_file() and not path.name.startswith(".")
    )


def _find_named_file(name: str, directory: Path) -> Path | None:
    """The profile file called ``name`` (stem or full file name) in ``directory``; ``None`` if there is none.

    ``name`` must be a plain file name: no separator, no ``..``, no absolute path. It is compared against the
    directory's listing, never joined onto the directory, so nothing outside the directory can be reached.
    """
    if not _NAME.match(name) or ".." in name:
        raise ProfileError(
            f"bad profile name {name!r}: a name is letters, digits, '.', '_' and '-' (a file in the profiles "
            "directory), not a path"
        )
    matches = [path for path in _profile_files(directory) if name in (path.stem, path.name)]
    if len(matches) > 1:
        names = ", ".join(path.name for path in matches)
        raise ProfileError(f"profile {name!r} is ambiguous: {names} in {directory}; keep one")
    return matches[0] if matches else None


def _folders(directory: Path | None, shipped: bool) -> tuple[Path, ...]:
    """The folders a profile name is looked up in, the first that has it winning: ``directory`` (if any), then,
    with ``shipped``, the shipped profiles (once, if ``directory`` is that folder)."""
    folders = () if directory is None else (Path(directory),)
    if shipped and not any(folder.resolve() == SHIPPED_DIRECTORY.resolve() for folder in folders):
        folders = (*folders, SHIPPED_DIRECTORY)
    return folders


def _find_in_folders(name: str, folders: tuple[Path, ...]) -> Path | None:
    for index, folder in enumerate(folders):
        path = _find_named_file(name, folder)
        if path is not None:
            # A full file name (teaching-file.json) names the profile of its stem, which an earlier folder replaces.
            for earlier in folders[:index]:
                replacing = _find_named_file(path.stem, earlier)
                if replacing is not None:
                    return replacing
            return path
    return None


def _named_files(folders: tuple[Path, ...]) -> dict[str, Path]:
    """The profile file of each name in ``folders``, the first folder's winning, in file-name order."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in _profile_files(folder):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items(), key=lambda item: item[1].name))


def load_profiles(directory: Path | None, *, shipped: bool = False) -> dict[str, Profile]:
    """Every profile offered: ``basic`` and one for each ``.csv``, ``.json`` and ``.xml`` file in ``directory``;
    with ``shipped`` (no profiles directory configured), the shipped profiles too, which a file of ``directory``
    of the same name replaces.

    Keyed by name, ``basic`` first, then by file name. ``directory`` ``None`` gives ``basic`` alone (and the shipped
    ones with ``shipped``). A broken file, two files with one stem in a folder, or a file named ``basic`` raises
    :class:`ProfileError` naming the file.
    """
    profiles: dict[str, Profile] = {BASIC_NAME: basic_profile()}
    folders = _folders(directory, shipped)
    for folder in folders:
        first: dict[str, Path] = {}
        for path in _profile_files(folder):
            name = path.stem
            if name == BASIC_NAME:
                raise ProfileError(f"{path}: {_BASIC_IS_BUILT_IN}")
            if name in first:
                raise ProfileError(f"{path}: a second profile named {name!r} ({first[name]}); keep one")
            first[name] = path
    for name, path in _named_files(folders).items():
        profiles[name] = _load_profile_file(path, (), folders)
    return profiles


def resolve_profile(
    name_or_path: str, directory: Path | None, *, shipped: bool = False, allow_paths: bool = False
) -> Profile:
    """The profile that ``name_or_path`` names.

    ``basic``, or a file in ``directory`` named by its stem (``research-longitudinal``) or full file name, or else,
    with ``shipped`` (no profiles directory configured), a shipped profile of that name. A name that looks like a
    path (``../x``, ``/etc/x``) is refused: REST callers may only choose among the profiles on offer. With
    ``allow_paths=True`` (the CLI), an existing file given by its path is loaded too, and wins over a profile of the
    same name.
    """
    folders = _folders(directory, shipped)
    if allow_paths:
        path = Path(name_or_path)
        looks_like_path = "/" in name_or_path or path.suffix.lower().lstrip(".") in FORMATS
        if looks_like_path and path.is_file():
            return _load_profile_file(path, (), folders)
        if "/" in name_or_path:
            raise ProfileError(f"no profile file at {name_or_path}")
    if name_or_path == BASIC_NAME:
        return basic_profile()
    if not folders:
        raise ProfileError(f"unknown profile {name_or_path!r}; no profiles directory is configured, known: basic")
    path_or_none = _find_in_folders(name_or_path, folders)
    if path_or_none is None:
        known = ", ".join([BASIC_NAME, *_named_files(folders)])
        raise ProfileError(f"unknown profile {name_or_path!r}; known profiles: {known}")
    if path_or_none.stem == BASIC_NAME:
        raise ProfileError(f"{path_or_none}: {_BASIC_IS_BUILT_IN}")
    return _load_profile_file(path_or_none, (), folders)
