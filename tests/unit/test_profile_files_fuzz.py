"""Broken profile files and rule texts, fuzzed: a ProfileError naming the source, or a valid profile; never
anything else (an lxml, json or csv exception escaping, a crash). 200 examples each in ``make test``; 2,000 with
``HYPOTHESIS_PROFILE=long`` (``make soak``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orthanc_anonymizer.deid.profile_files import SHIPPED_DIRECTORY, load_profile_file, parse_rules, rules_from_json
from orthanc_anonymizer.deid.profiles import Profile, Rule
from orthanc_anonymizer.errors import ProfileError

EXAMPLES = 2000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 200
SHIPPED = SHIPPED_DIRECTORY
SHIPPED_FILES = {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted(SHIPPED.iterdir())
    if path.suffix in (".csv", ".json", ".xml")
}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=st.text(max_size=400), fmt=st.sampled_from(["csv", "json", "xml", ""]))
def test_any_rule_text_gives_rules_or_a_profile_error_naming_the_source(text: str, fmt: str) -> None:
    try:
        rules = parse_rules(text, fmt, "fuzzed.rules")
    except ProfileError as error:
        assert "fuzzed.rules" in str(error)
        return
    assert all(isinstance(rule, Rule) for rule in rules)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
RULE_OBJECTS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "Tag": st.one_of(st.sampled_from(["(0010,0010)", "0010xx10", "00100010", "PatientName"]), JSON_VALUES),
            "Action": st.one_of(st.sampled_from(["X", "K", "D", "Z", "C", "U", "X/Z/U*"]), JSON_VALUES),
        },
    ),
    max_size=5,
)


@FUZZ
@given(value=st.one_of(JSON_VALUES, RULE_OBJECTS))
def test_any_json_rules_value_gives_rules_or_a_profile_error(value: object) -> None:
    try:
        rules = rules_from_json(value, "body Rules")
    except ProfileError as error:
        assert "body Rules" in str(error)
        return
    assert all(isinstance(rule, Rule) for rule in rules)


@FUZZ
@given(
    name=st.sampled_from(sorted(SHIPPED_FILES)),
    edits=st.lists(st.tuples(st.integers(0, 5000), st.characters(codec="utf-8")), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 5000)),
)
def test_a_damaged_shipped_profile_file_loads_or_is_refused_naming_the_file(
    name: str, edits: list[tuple[int, str]], cut: int | None
) -> None:
    text = list(SHIPPED_FILES[name])
    for position, character in edits:
        if position < len(text):
            text[position] = character
    damaged = "".join(text if cut is None else text[:cut])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(damaged, encoding="utf-8")
        try:
            profile = load_profile_file(path)
        except ProfileError as error:
            assert name in str(error)
            return
    assert isinstance(profile, Profile)
    assert profile.name == Path(name).stem
