"""The json renderer's writer: the stdlib's indented text, with long lists one item per line."""

from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bncheck
from bncheck.render.json import Rows, as_dict, dump, render

from .conftest import FIXTURES, run_cli

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
trees = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30
)


def _text(value: object) -> str:
    stream = io.StringIO()
    dump(value, stream)
    return stream.getvalue()


def _materialised(value: object) -> object:
    """``value`` with every Rows made a plain list."""
    if isinstance(value, (Rows, list)):
        return [_materialised(item) for item in (value.items if isinstance(value, Rows) else value)]
    if isinstance(value, dict):
        return {key: _materialised(item) for key, item in value.items()}
    return value


@given(trees)
def test_without_rows_the_same_text_as_the_stdlib(value: object) -> None:
    assert _text(value) == json.dumps(value, indent=2, allow_nan=False)


@given(st.lists(trees, max_size=5))
def test_rows_one_compact_item_per_line(items: list[object]) -> None:
    rows = ",\n".join("    " + json.dumps(item, separators=(", ", ": ")) for item in items)
    expected = '{\n  "k": [\n' + rows + "\n  ]\n}" if items else '{\n  "k": []\n}'
    assert _text({"k": Rows(iter(items))}) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"a": [math.nan]}, {"a": Rows([math.inf])}])
def test_non_finite_floats_are_refused_like_the_stdlib(bad: object) -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        _text(bad)


def test_unknown_types_are_refused_like_the_stdlib() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _text({"a": object()})


@pytest.mark.parametrize("name", ["tf1_no_control_deps", "tf1_value_oddities", "tf1_nan_negvar", "tf2_fit"])
def test_reports_hold_what_the_stdlib_would_write(name: str) -> None:
    report = bncheck.inspect(str(FIXTURES / name))
    stream = io.StringIO()
    render([report], stream)
    assert json.loads(stream.getvalue()) == json.loads(json.dumps(_materialised(as_dict([report]))))
    lines = stream.getvalue().splitlines()
    layer_lines = [line for line in lines if line.startswith('        {"name": ')]
    assert [json.loads(line.rstrip(","))["name"] for line in layer_lines] == [layer.name for layer in report.layers]


def test_cli_json_of_many_layers_is_one_line_per_layer() -> None:
    result = run_cli("inspect", str(FIXTURES / "tf1_many_vars"), "--format", "json")
    document = json.loads(result.stdout)
    (file,) = document["files"]
    assert len(file["layers"]) == 2000
    assert len(result.stdout.splitlines()) < 2100  # one line per layer, a few for the rest
