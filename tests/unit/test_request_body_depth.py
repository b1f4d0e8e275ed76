"""Deeply nested JSON bodies are refused before parsing: Orthanc's HTTP threads have small stacks, and the C JSON
parser overflowed one at a few thousand levels (Orthanc died of SIGSEGV; found by the route fuzzer)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orthanc_anonymizer.server.api import MAX_NESTING, BadRequest, nesting_depth, parse_anonymize
from orthanc_anonymizer.server.config import AnonymizerConfig, RequestLimits

# A body limit far above these bodies: the depth is refused whatever Anonymizer.MaximumRequestBytes allows.
CONFIG = AnonymizerConfig(secret=b"s", limits=RequestLimits(body_bytes=1 << 30))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\u5c41', max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=30,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=json_values, indent=st.none() | st.integers(0, 2), ascii_only=st.booleans())
def test_depth_is_the_parsed_depth_whatever_the_strings_hold(value, indent, ascii_only) -> None:
    import json

    assert nesting_depth(json.dumps(value, indent=indent, ensure_ascii=ascii_only)) == depth_of(value)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-32"])
@pytest.mark.parametrize("opening", ['{"a":', "[", '{"Rules": ['])
def test_deep_bodies_are_400_in_every_json_encoding(encoding, opening) -> None:
    with pytest.raises(BadRequest, match="nested deeper"):
        parse_anonymize((opening * 100_000).encode(encoding), CONFIG)
    with pytest.raises(BadRequest, match="nested deeper"):
        parse_anonymize((opening * (MAX_NESTING + 1)).encode(encoding), CONFIG)


def test_the_scan_is_linear_even_for_quotes_and_backslashes() -> None:
    # Linear, not quadratic: ten times the body costs about ten times the CPU (a quadratic scan would cost a hundred
    # times). CPU time of this process, the best of three, so that another process on the machine cannot fail it.
    def cpu_seconds(body: str) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            nesting_depth(body)
            best = min(best, time.process_time() - started)
        return best

    for unit in ('\\"', '"\\\\', '"a"', "[1,"):
        small, large = cpu_seconds('"' + unit * 50_000), cpu_seconds('"' + unit * 500_000)
        assert large < 30 * max(small, 1e-3), (unit, small, large)
