"""The table output for people: widths, long names, whole codes, colour, and rows written as they are made."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from bncheck.facts import Variable
from bncheck.findings import Finding, Severity
from bncheck.layers import BNLayer
from bncheck.render import table
from bncheck.render.layout import shorten
from bncheck.report import Report
from bncheck.stats import Stats

from .conftest import FIXTURES, run_cli

ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
REAL_NAMES = (  # layer names of public models (ResNet50, a TF1 GAN, a Keras classifier, a slim network)
    "conv5_block3_3_bn",
    "generator/batch_normalization_v1_12",
    "classifier/batch_normalization_1",
    "stoch_depth/stack1/res1/Conv_1/BatchNorm",
)
CODE = re.compile(r"\bBN\d+\b")
INSPECT = ["fixtures/tf1_no_control_deps", "fixtures/tf1_value_oddities", "fixtures/keras/k3_frozen/model.keras"]
DIFF = [
    ["fixtures/diff/no_updates/a", "fixtures/diff/no_updates/b"],
    ["fixtures/diff/finetune_drift/a", "fixtures/diff/finetune_drift/b", "--frozen", "batch_normalization*"],
    ["fixtures/keras/k3_center_scale/model.keras", "fixtures/keras/k3_center_scale/model.weights.h5"],
]


TRAINED = {"gamma": (0.81, 1.23), "beta": (-0.2, 0.3), "moving_mean": (-0.688, 0.447), "moving_variance": (0.211, 1.97)}


def _layer(name: str, channels: int = 512) -> BNLayer:
    """A BN layer with four float32 variables whose statistics look trained."""
    variables = {role: Variable(f"{name}/{role}", name, "float32", (channels,), read=np.zeros) for role in ROLES}
    stats = {role: Stats(channels, 0, low, high, (low + high) / 2) for role, (low, high) in TRAINED.items()}
    return BNLayer(name, variables, stats=stats)


def _report(names: tuple[str, ...], codes: tuple[str, ...] = ("BN002",)) -> Report:
    findings = [Finding(code, "rule", Severity.ERROR, name, "a message") for name in names for code in codes]
    return Report("model.ckpt", "TF1 name-based checkpoint", layers=[_layer(n) for n in names], findings=findings)


def _render(report: Report, width: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    table.render([report], out)
    return out.getvalue().splitlines()


def _table_lines(lines: list[str]) -> list[str]:
    """The lines from the column titles to the legend."""
    start = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    end = next(i for i, line in enumerate(lines) if line.startswith(("vars:", "every layer has", "cells:")))
    return lines[start:end]


def _assert_tidy(lines: list[str], width: int) -> None:
    """Table lines fit; other lines fit unless they hold one word longer than a line (never broken);
    no trailing blanks; every rule code whole."""
    rows = set(_table_lines(lines))
    for line in lines:
        assert line == line.rstrip(), f"trailing blanks: {line!r}"
        assert len(line) <= width or (line not in rows and len(line.split()) == 1), f"too wide: {line!r}"
        assert all(len(code) == 5 for code in CODE.findall(line)), f"a code cut: {line!r}"


@pytest.mark.parametrize("width", [60, 80])
@pytest.mark.parametrize("args", [["inspect", path] for path in INSPECT] + [["diff", *pair] for pair in DIFF])
def test_names_stay_whole_and_codes_are_never_cut(args: list[str], width: int) -> None:
    """At 60 (the diff showed `BN20` / `1`, names folded into `batch_norm` / `alization_1`) and 80 columns."""
    result = run_cli(*args, env={"COLUMNS": str(width)})
    assert result.returncode in (0, 1), result.stderr
    lines = result.stdout.splitlines()
    report = json.loads(run_cli(*args, "--format", "json").stdout)
    layers = report["files"][0]["layers"] if args[0] == "inspect" else report["layers"]
    rows = _table_lines(lines)
    for layer in layers:
        (row,) = [i for i, line in enumerate(rows) if line == layer["name"] or line.startswith(f"{layer['name']}  ")]
        row_codes = {code for line in rows[row : row + 3] for code in CODE.findall(line)}  # the row and its overflow
        assert set(layer["codes"]) <= row_codes, (layer, rows[row : row + 3])
    _assert_tidy(lines, width)


@pytest.mark.parametrize("width", [60, 80])
@pytest.mark.parametrize("codes", [("BN002",), ("BN002", "BN102")])
def test_real_names_print_whole_with_their_codes(
    width: int, codes: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names of public models, trained statistics: at 80 columns one line per layer with one code; two codes
    take a second line there; at 60, every row takes two lines (names whole)."""
    lines = _render(_report(REAL_NAMES, codes), width, monkeypatch)
    rows = _table_lines(lines)
    lines_per_row = 1 if width == 80 and len(codes) == 1 else 2
    rule = next(i for i, line in enumerate(rows) if set(line) == {"─"})
    assert len(rows) - rule - 1 == len(REAL_NAMES) * lines_per_row, rows
    for name in REAL_NAMES:
        (row,) = [i for i, line in enumerate(rows) if line.startswith(f"{name}  ")]
        text = " ".join(rows[row : row + lines_per_row])
        assert set(CODE.findall(text)) == set(codes) and "-0.688..0.447" in text and "0.211..1.97" in text, text
    _assert_tidy(lines, width)


def test_a_name_longer_than_its_room_is_shortened_in_the_middle(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "generator/discriminator_head/batch_normalization_v1_12"
    rows = _table_lines(_render(_report((name,)), 60, monkeypatch))
    (row,) = [line for line in rows if "BN002" in line]
    shown = row.split("  ")[0]
    assert "…" in shown and name.startswith(shown.split("…")[0]) and name.endswith(shown.split("…")[1])
    assert len(shown.split("…")[0]) >= 15 and len(shown.split("…")[1]) >= 15  # the start and the distinctive end
    assert not any(name[-10:] in line for line in rows if line != row)  # not folded onto another line


def test_shorten_keeps_the_start_and_the_end() -> None:
    assert shorten("generator/batch_normalization_v1_12", 26) == "generator/bat…zation_v1_12"
    assert shorten("conv5_block3_3_bn", 40) == "conv5_block3_3_bn"
    assert shorten("abcdef", 1) == "a"


def test_legend_only_when_rows_are_shown() -> None:
    collapsed = run_cli("inspect", str(FIXTURES / "tf1_many_vars")).stdout
    assert "2000 layers without findings (--all lists them)" in collapsed
    assert "vars:" not in collapsed and not any(line.startswith("layer ") for line in collapsed.splitlines())
    assert "vars: g gamma" in run_cli("inspect", str(FIXTURES / "tf1_no_control_deps")).stdout


def test_colour_on_terminals_only() -> None:
    """Severity colours when the output takes them (FORCE_COLOR stands for a terminal); none piped or
    under NO_COLOR (bold stays), as Rich decides."""
    buggy = str(FIXTURES / "tf1_no_control_deps")
    coloured = run_cli("inspect", buggy, env={"NO_COLOR": "", "FORCE_COLOR": "1"}).stdout
    assert "\x1b[1;31mBN002\x1b[0m" in coloured and "\x1b[32mok" not in coloured
    no_colour = run_cli("inspect", buggy, env={"NO_COLOR": "1", "FORCE_COLOR": "1"}).stdout
    assert "\x1b[1mBN002\x1b[0m" in no_colour and "31m" not in no_colour
    assert "\x1b[" not in run_cli("inspect", buggy, env={"NO_COLOR": ""}).stdout  # piped


def test_width_follows_columns() -> None:
    buggy = str(FIXTURES / "tf1_no_control_deps")
    for width in (60, 100):
        lines = run_cli("inspect", buggy, env={"COLUMNS": str(width)}).stdout.splitlines()
        assert max(len(line) for line in lines if " " in line.strip()) <= width
    wide = run_cli("inspect", buggy, env={"COLUMNS": "200"}).stdout.splitlines()
    assert wide[0].endswith("| 3 BN layers")  # the header is one line when it fits


def test_an_output_encoding_without_unicode_gets_replacements_not_a_traceback() -> None:
    result = run_cli("inspect", str(FIXTURES / "tf1_no_control_deps"), env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "-" * 40 in result.stdout and "trained (max |gamma - 1| = 0.0528" in result.stdout


def test_a_model_wide_condition_is_said_once() -> None:
    """Every layer untrained: one line for the model and one layer as the example; --all lists every layer."""
    untrained = str(FIXTURES / "tf1_untrained")
    lines = run_cli("inspect", untrained).stdout.splitlines()
    (heading,) = [i for i, line in enumerate(lines) if line.startswith("BN003 layer-untrained")]
    assert lines[heading + 1].startswith("  (model): every BN layer is still at its initial values")
    per_layer = [line for line in lines if line.startswith("  batch_normalization")]
    assert len(per_layer) == 1 and "  ... and 2 more (--all lists them)" in lines
    listed = run_cli("inspect", "--all", untrained).stdout.splitlines()
    assert len([line for line in listed if line.startswith("  batch_normalization")]) == 3
