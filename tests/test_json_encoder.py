"""The fast indented JSON encoder of the json renderer writes what ``json.dumps(indent=2)`` writes."""

from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bncheck
from bncheck.render.json import as_dict, dump, dumps

from .conftest import FIXTURES

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False, allow_infinity=False)
trees = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=30
)


@given(trees)
def test_same_text_as_the_stdlib(value: object) -> None:
    assert dumps(value) == json.dumps(value, indent=2, allow_nan=False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"a": [math.nan]}])
def test_non_finite_floats_are_refused_like_the_stdlib(bad: object) -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        dumps(bad)


def test_unknown_types_are_refused_like_the_stdlib() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"a": object()})
    with pytest.raises(TypeError, match="keys must be"):
        dumps({(1, 2): 1})


@pytest.mark.parametrize("name", ["tf1_no_control_deps", "tf1_value_oddities", "tf1_nan_negvar", "tf2_fit"])
def test_reports_render_as_with_the_stdlib(name: str) -> None:
    report = bncheck.inspect(str(FIXTURES / name))
    assert dumps(as_dict([report])) == json.dumps(as_dict([report]), indent=2, allow_nan=False)


def test_dump_in_pieces_writes_the_same_text() -> None:
    value = {"layers": [{"name": f"bn_{i}", "stats": [0.5, None, True]} for i in range(30_000)], "summary": {}}
    stream = io.StringIO()
    dump(value, stream)
    assert stream.getvalue() == json.dumps(value, indent=2, allow_nan=False)
