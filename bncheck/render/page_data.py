"""What an HTML report shows, as JSON values: the per-layer rows its table is built from (embedded in the page
and checked by golden files) and the chart columns. Numbers are rounded to 4 significant digits: a report of
20,000 layers stays a few MB."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..deltas import DiffReport, LayerPair
from ..findings import Finding
from ..layers import ROLES, BNLayer
from ..report import Report
from ..rules.diff import matching_globs
from ..stats import Stats
from .charts import Column

VERSION = 1
INSPECT_COLUMNS = (
    "layer",
    "channels",
    "frozen",
    "vars",
    "mean_min",
    "mean_max",
    "var_min",
    "var_max",
    "abs_gamma_min",
    "abs_gamma_max",
    "amplification_min",
    "amplification_max",
    "codes",
    "severity",
    "findings",
)
DIFF_COLUMNS = ("layer", "state", "frozen", *ROLES, "variance_ratio", "codes", "severity", "findings")
_LETTERS = {"gamma": "g", "beta": "b", "moving_mean": "m", "moving_variance": "v"}


def rounded(x: float | None) -> float | None:
    """``x`` to 4 significant digits; None for None and values not finite (JSON has neither NaN nor Inf)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.4g}")


class Marks:
    """Per layer: its codes, the worst severity among them, the id in the page of its first finding of each
    code, and of its first finding."""

    def __init__(self, findings: Sequence[Finding], prefix: str) -> None:
        self.prefix = prefix
        self.codes: dict[str | None, list[str]] = {}
        self.severity: dict[str | None, str] = {}
        self.first: dict[str | None, str] = {}
        self.ids: dict[tuple[str | None, str], str] = {}
        ranks = {"info": 1, "warning": 2, "error": 3}
        for i, finding in enumerate(findings):
            layer = finding.layer
            codes = self.codes.setdefault(layer, [])
            if finding.code not in codes:
                codes.append(finding.code)
            label = finding.severity.label
            if ranks[label] > ranks.get(self.severity.get(layer, ""), 0):
                self.severity[layer] = label
            self.first.setdefault(layer, self.finding_id(i))
            self.ids.setdefault((layer, finding.code), self.finding_id(i))

    def finding_id(self, i: int) -> str:
        """The id in the page of the ``i``-th finding."""
        return f"{self.prefix}f{i}"

    def of(self, layer: str) -> tuple[list[str], str, list[str]]:
        """The codes of ``layer`` (sorted), its worst severity and the id of its first finding of each code."""
        codes = sorted(self.codes.get(layer, ()))
        return codes, self.severity.get(layer, ""), [self.ids[layer, code] for code in codes]

    def mark(self, layer: str) -> tuple[str, str]:
        """The worst severity of ``layer``'s findings and the id of its first finding ('' when none)."""
        return self.severity.get(layer, ""), self.first.get(layer, "")


def _range(stats: Stats | None) -> tuple[float | None, float | None]:
    return (None, None) if stats is None else (rounded(stats.min), rounded(stats.max))


def _frozen(layer: BNLayer) -> bool:
    return not layer.hints.trainable


def layer_row(layer: BNLayer, marks: Marks) -> list[Any]:
    stats = layer.stats
    vars_ = "".join(_LETTERS[role] if role in layer.variables else "-" for role in ROLES)
    return [
        layer.name,
        layer.channels,
        _frozen(layer),
        vars_,
        *_range(stats.get("moving_mean")),
        *_range(stats.get("moving_variance")),
        *_range(stats.get("abs_gamma")),
        *_range(stats.get("amplification")),
        *marks.of(layer.name),
    ]


def model_marks(reports: Sequence[Report]) -> list[Marks]:
    """The Marks of each report, their ids unique in one page."""
    return [Marks(report.findings, f"m{m}-") for m, report in enumerate(reports)]


def inspect_data(reports: Sequence[Report], marks: Sequence[Marks]) -> dict[str, Any]:
    """The page's data: per model its path and one row per layer (INSPECT_COLUMNS)."""
    return {
        "version": VERSION,
        "kind": "inspect",
        "columns": list(INSPECT_COLUMNS),
        "models": [
            {"path": report.path, "rows": [layer_row(layer, mark) for layer in report.layers]}
            for report, mark in zip(reports, marks, strict=True)
        ],
    }


CHARTS = (  # (id, title, stats key, log scale)
    ("mean", "moving_mean, min to max per layer", "moving_mean", False),
    ("variance", "moving_variance, min to max (log scale)", "moving_variance", True),
    ("gamma", "|gamma|, min to max", "abs_gamma", False),
    ("amplification", "amplification |gamma| / sqrt(var + eps), min to max (log scale)", "amplification", True),
)


def chart_columns(report: Report, key: str, marks: Marks) -> list[Column]:
    """One chart column per layer of ``report``: the range of the Stats under ``key``."""
    columns = []
    for layer in report.layers:
        stats = layer.stats.get(key)
        severity, first = marks.mark(layer.name)
        low, high = (None, None) if stats is None else (stats.min, stats.max)
        nonfinite = stats is not None and stats.nonfinite > 0
        columns.append(Column(layer.name, (low, high), nonfinite, severity, _frozen(layer), first))
    return columns


def _change(pair: LayerPair, role: str) -> list[Any] | None:
    """[status, max_rel] of one variable of a pair; None when neither model has it."""
    delta = pair.deltas.get(role)
    return None if delta is None else [delta.status, rounded(delta.max_rel)]


def pair_state(pair: LayerPair) -> str:
    return "changed" if pair.changed() else "identical" if pair.identical else "within"


def pair_frozen(pair: LayerPair, declared: tuple[str, ...]) -> bool:
    """Frozen in either file, or declared frozen (--frozen)."""
    return _frozen(pair.a) or _frozen(pair.b) or bool(matching_globs(pair.name, declared))


def diff_data(report: DiffReport, marks: Marks) -> dict[str, Any]:
    """The page's data: the two paths and one row per paired layer (DIFF_COLUMNS)."""
    rows = [
        [
            pair.name,
            pair_state(pair),
            pair_frozen(pair, report.declared_frozen),
            *(_change(pair, role) for role in ROLES),
            rounded(pair.variance_ratio),
            *marks.of(pair.name),
        ]
        for pair in report.pairs
    ]
    return {
        "version": VERSION,
        "kind": "diff",
        "columns": list(DIFF_COLUMNS),
        "a": report.a.path,
        "b": report.b.path,
        "rows": rows,
        "unpaired": {"a": report.only_a, "b": report.only_b},
    }


def change_columns(report: DiffReport, marks: Marks) -> list[Column]:
    """One chart column per paired layer: the relative change of each role (None where identical or absent)."""
    columns = []
    for pair in report.pairs:
        values = []
        for role in ROLES:
            delta = pair.deltas.get(role)
            changed = delta is not None and delta.status in ("changed", "within") and delta.max_rel is not None
            values.append(delta.max_rel if changed and delta is not None else None)
        nonfinite = any(delta.nonfinite for delta in pair.deltas.values())
        severity, first = marks.mark(pair.name)
        frozen = pair_frozen(pair, report.declared_frozen)
        columns.append(Column(pair.name, tuple(values), nonfinite, severity, frozen, first))
    return columns
