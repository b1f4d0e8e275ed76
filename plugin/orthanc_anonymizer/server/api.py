"""The REST API's request bodies and answers, as plain data: parsed, checked, shaped. No ``orthanc`` here.

Bad input raises :class:`BadRequest` (HTTP 400) with a message naming the bad part; the glue turns it into the
answer. Profiles, options and rules are checked here, before any job starts.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orthanc_anonymizer.deid.identity import ValueRejected, check_patient_id, check_patient_name
from orthanc_anonymizer.deid.profile_files import load_profiles, resolve_profile, rules_from_json
from orthanc_anonymizer.deid.profiles import Option, Rule
from orthanc_anonymizer.deid.uids import check_project
from orthanc_anonymizer.deid.weakening import Weakening, chosen_identity, weakenings
from orthanc_anonymizer.errors import AnonymizerError, ProfileError
from orthanc_anonymizer.server.config import AnonymizerConfig, RequestLimits
from orthanc_anonymizer.server.job_records import JobSettings
from orthanc_anonymizer.server.orthanc_client import LEVELS

_SETTING_KEYS = {
    "Profile",
    "Options",
    "Rules",
    "PatientName",
    "PatientID",
    "Project",
    "InPlace",
    "DryRun",
    "IncludeValues",
    "Asynchronous",
}
_BATCH_KEYS = {"Level", "Resources"}
_LEVEL_NAMES = {name.lower(): segment for segment, name in LEVELS.items()} | {segment: segment for segment in LEVELS}


class BadRequest(AnonymizerError):
    """The request is malformed, names something unknown or asks for more than a limit allows (HTTP 400)."""


class RequestTooLarge(AnonymizerError):
    """The request body is larger than ``Anonymizer.MaximumRequestBytes`` (HTTP 413)."""


@dataclass(frozen=True)
class AnonymizeRequest:
    """A checked ``POST /anonymizer/{level}/{id}`` or ``/anonymizer/batch`` body."""

    settings: JobSettings
    asynchronous: bool
    level: str = ""
    """Batch only: the URI segment of the level (``studies``...)."""
    resources: tuple[str, ...] = ()
    """Batch only: the Orthanc IDs."""
    weakenings: tuple[Weakening, ...] = ()
    """The request's rules and options that keep or clean what the site's profile (the named profile with the
    configured options) removes: only users allowed to ``weaken`` may send them."""


MAX_NESTING = 16
"""The deepest body accepted (a real one is 3 deep: body, Rules, rule). Orthanc's HTTP threads have small stacks:
a JSON body nested thousands deep would overflow one in the C JSON parser and take Orthanc down with it."""
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _outside_strings(text: str) -> Iterator[str]:
    """The parts of ``text`` outside JSON strings (an unterminated string runs to the end)."""
    position = 0
    while (quote := text.find('"', position)) >= 0:
        yield text[position:quote]
        end = quote
        while True:
            end = text.find('"', end + 1)
            if end < 0:
                return
            backslashes = 0
            while text[end - 1 - backslashes] == "\\":  # each run of backslashes is counted once
                backslashes += 1
            if backslashes % 2 == 0:
                break
        position = end + 1
    yield text[position:]


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest (brackets inside strings not counted): without
    parsing nor recursion, in time linear in its length whatever it holds."""
    brackets = _NOT_BRACKETS.sub("", "".join(_outside_strings(text)))
    return max(itertools.accumulate((1 if bracket in "[{" else -1 for bracket in brackets), initial=0))


def _decode(body: bytes, limits: RequestLimits) -> dict[str, Any]:
    if len(body) > limits.body_bytes:
        raise RequestTooLarge(
            f"body: {len(body)} bytes, more than Anonymizer.MaximumRequestBytes ({limits.body_bytes})"
        )
    if not body.strip():
        return {}
    try:  # as json.loads does with bytes (UTF-8, 16 or 32), but first, so the depth is checked on the text
        text = body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError as error:
        raise BadRequest(f"body: not JSON ({error})") from None
    # Counting brackets is fast (C); only a body with many of them needs the scan.
    if text.count("[") + text.count("{") > MAX_NESTING and nesting_depth(text) > MAX_NESTING:
        raise BadRequest(f"body: JSON nested deeper than {MAX_NESTING} levels")
    try:
        value = json.loads(text)
    except ValueError as error:
        raise BadRequest(f"body: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"body: expected a JSON object, got {type(value).__name__}")
    return value


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{key}: expected true or false")
    return value


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key}: expected a string")
    return value


def _project(body: Mapping[str, Any]) -> str:
    try:
        return check_project(body.get("Project", ""))
    except ValueError as error:
        raise BadRequest(f"Project: {error}") from None


def parse_settings(body: Mapping[str, Any], config: AnonymizerConfig) -> JobSettings:
    """The job settings a body asks for, defaults from ``config``. :class:`BadRequest` naming the bad part."""
    profile_name = body.get("Profile") or config.default_profile
    if not isinstance(profile_name, str):
        raise BadRequest("Profile: expected a profile name")
    options = body.get("Options")
    if options is None:
        options = [option.value for option in config.default_options]
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        raise BadRequest("Options: expected a list of option names")
    try:
        profile = resolve_profile(profile_name, config.profiles_directory, shipped=config.shipped_profiles)
        profile = profile.with_options(Option.parse(option) for option in options)
        if body.get("Rules") is not None:
            rules = _bounded_rules(body["Rules"], config.limits.rules)
            profile = profile.with_rules(rules)
    except ProfileError as error:
        raise BadRequest(str(error)) from None
    dry_run = _bool(body, "DryRun")
    include_values = _bool(body, "IncludeValues")
    if include_values and not dry_run:
        raise BadRequest("IncludeValues: only with DryRun")
    in_place = _bool(body, "InPlace")
    if in_place and dry_run:
        raise BadRequest("InPlace: not with DryRun")
    patient_name, patient_id = _optional_text(body, "PatientName"), _optional_text(body, "PatientID")
    try:
        if patient_name is not None:
            check_patient_name(patient_name)
        if patient_id is not None:
            check_patient_id(patient_id)
    except ValueRejected as error:
        raise BadRequest(str(error)) from None
    return JobSettings(
        profile=profile,
        patient_name=patient_name,
        patient_id=patient_id,
        in_place=in_place,
        dry_run=dry_run,
        include_values=include_values,
        project=_project(body),
    )


def _bounded_rules(value: object, most: int) -> list[Rule]:
    """The body's ``"Rules"``, at most ``most`` of them (a list is counted before its rules are parsed)."""

    def refuse(count: int) -> BadRequest:
        return BadRequest(f"Rules: {count} rules, more than Anonymizer.MaximumRules ({most})")

    if isinstance(value, list) and len(value) > most:
        raise refuse(len(value))
    rules = rules_from_json(value, "Rules")
    if len(rules) > most:
        raise refuse(len(rules))
    return rules


def _weakenings(body: Mapping[str, Any], config: AnonymizerConfig, settings: JobSettings) -> tuple[Weakening, ...]:
    """What the request's rules and options weaken in the site's profile: the named one (or the configured
    default) with the configured options, as a body without ``Options`` and ``Rules`` would get it."""
    site = resolve_profile(
        body.get("Profile") or config.default_profile, config.profiles_directory, shipped=config.shipped_profiles
    )
    site = site.with_options(config.default_options)
    return weakenings(settings.profile, site, chosen_identity(settings.patient_name, settings.patient_id))


def parse_anonymize(body: bytes, config: AnonymizerConfig) -> AnonymizeRequest:
    """The body of ``POST /anonymizer/{level}/{id}``."""
    decoded = _decode(body, config.limits)
    unknown = sorted(set(decoded) - _SETTING_KEYS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field; known fields: {', '.join(sorted(_SETTING_KEYS))}")
    settings = parse_settings(decoded, config)
    return AnonymizeRequest(
        settings=settings,
        asynchronous=_bool(decoded, "Asynchronous"),
        weakenings=_weakenings(decoded, config, settings),
    )


def parse_batch(body: bytes, config: AnonymizerConfig) -> AnonymizeRequest:
    """The body of ``POST /anonymizer/batch``: ``{"Level", "Resources": [ids], ...settings}``."""
    decoded = _decode(body, config.limits)
    known = _SETTING_KEYS | _BATCH_KEYS
    unknown = sorted(set(decoded) - known)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field; known fields: {', '.join(sorted(known))}")
    level = decoded.get("Level")
    if not isinstance(level, str) or level.lower() not in _LEVEL_NAMES:
        raise BadRequest("Level: expected Patient, Study, Series or Instance")
    resources = decoded.get("Resources")
    if (
        not isinstance(resources, list)
        or not resources
        or not all(isinstance(item, str) and item for item in resources)
    ):
        raise BadRequest("Resources: expected a non-empty list of Orthanc IDs")
    if len(resources) > config.limits.batch_resources:
        raise BadRequest(
            f"Resources: {len(resources)} IDs, more than Anonymizer.MaximumBatchResources "
            f"({config.limits.batch_resources})"
        )
    if len(set(resources)) != len(resources):
        raise BadRequest("Resources: an ID is listed twice")
    settings = parse_settings(decoded, config)
    return AnonymizeRequest(
        settings=settings,
        asynchronous=True,
        level=_LEVEL_NAMES[level.lower()],
        resources=tuple(resources),
        weakenings=_weakenings(decoded, config, settings),
    )


def parse_preview(query: Mapping[str, str], config: AnonymizerConfig) -> tuple[JobSettings, int]:
    """The query of ``GET /anonymizer/instances/{id}/pixel-preview``: ``?profile=&options=A,B&frame=``.

    The settings are those of an anonymization with that profile and those options (the configured defaults when
    absent), ``CleanPixelData`` always among them; the frame counts from 1. :class:`BadRequest` naming the bad part.
    """
    unknown = sorted(set(query) - {"profile", "options", "frame"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown query argument; known: frame, options, profile")
    body: dict[str, Any] = {}
    if query.get("profile"):
        body["Profile"] = query["profile"]
    options = (
        [option.strip() for option in query["options"].split(",") if option.strip()]
        if query.get("options") is not None
        else [option.value for option in config.default_options]
    )
    body["Options"] = sorted({*options, Option.CleanPixelData.value})
    frame = optional_int(query, "frame")
    if frame == 0:
        raise BadRequest("frame: frames count from 1")
    return parse_settings(body, config), frame or 1


def profiles_answer(config: AnonymizerConfig) -> list[dict[str, object]]:
    """``GET /anonymizer/profiles``: ``[{"Name", "Description", "Options"}]``, ``basic`` first, the profiles on
    offer."""
    answer: list[dict[str, object]] = []
    for name, profile in load_profiles(config.profiles_directory, shipped=config.shipped_profiles).items():
        described = profile.describe()
        answer.append(
            {
                "Name": name,
                "Description": described["Description"],
                "Options": described["Options"],
                "Rules": len(profile.rules),
            }
        )
    return answer


def optional_int(query: Mapping[str, str], key: str) -> int | None:
    """A non-negative integer query argument (``?since=3``); :class:`BadRequest` naming it otherwise."""
    text = query.get(key)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{key}: expected a whole number") from None
    if value < 0:
        raise BadRequest(f"{key}: expected a number >= 0")
    return value
