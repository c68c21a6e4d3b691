"""Machine-readable report: ``{"version": 1, "files": [...], "summary": {...}}``.

The names in it are a stable interface; fields may be added, never renamed.
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..model import BNLayer, Delta, DiffReport, Finding, LayerPair, Report, summarize, summarize_diff
from . import value_summary

VERSION = 1


def _layer(layer: BNLayer, report: Report) -> dict[str, Any]:
    return {
        "name": layer.name,
        "channels": layer.channels,
        "variables": {
            role: {
                "key": variable.key,
                "dtype": variable.dtype,
                "shape": list(variable.shape),
                "stats": value_summary(layer.values.get(role)),
            }
            for role, variable in layer.variables.items()
        },
        "momentum": layer.hints.momentum,
        "epsilon": layer.hints.epsilon,
        "frozen": layer.hints.frozen,
        "codes": report.codes(layer.name),
        "unreadable": layer.unreadable,
    }


def finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "code": f.code,
        "name": f.name,
        "severity": f.severity.label,
        "layer": f.layer,
        "message": f.message,
        "known": f.known,
    }


def as_dict(reports: list[Report]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "files": [
            {
                "path": r.path,
                "format": r.format,
                "step": r.step,
                "step_source": r.step_source,
                "layers": [_layer(layer, r) for layer in r.layers],
                "findings": [finding_dict(f) for f in r.findings],
                "notes": r.notes,
                "errors": r.errors,
            }
            for r in reports
        ],
        "summary": summarize(reports),
    }


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    json.dump(as_dict(reports), stream, indent=2, allow_nan=False)
    stream.write("\n")


def _delta(delta: Delta) -> dict[str, Any]:
    return {
        "status": delta.status,
        "max_abs": delta.max_abs,
        "max_rel": delta.max_rel,
        "shape_a": None if delta.shape_a is None else list(delta.shape_a),
        "shape_b": None if delta.shape_b is None else list(delta.shape_b),
        "nonfinite": delta.nonfinite,
    }


def _pair(pair: LayerPair, report: DiffReport) -> dict[str, Any]:
    return {
        "name": pair.name,
        **{role: _delta(delta) for role, delta in pair.deltas.items()},
        "changed": pair.changed(),
        "variance_ratio": pair.variance_ratio,
        "bessel_n": pair.bessel,
        "codes": report.codes(pair.name),
    }


def diff_as_dict(report: DiffReport) -> dict[str, Any]:
    return {
        "version": VERSION,
        "a": report.a.path,
        "b": report.b.path,
        "sources": {
            side: {"format": r.format, "step": r.step, "step_source": r.step_source, "layers": len(r.layers)}
            for side, r in (("a", report.a), ("b", report.b))
        },
        "layers": [_pair(pair, report) for pair in report.pairs],
        "unpaired": {"a": report.only_a, "b": report.only_b},
        "findings": [finding_dict(f) for f in report.findings],
        "notes": report.notes,
        "errors": report.errors,
        "summary": summarize_diff(report),
    }


def render_diff(report: DiffReport, stream: IO[str], show_all: bool = False) -> None:
    json.dump(diff_as_dict(report), stream, indent=2, allow_nan=False)
    stream.write("\n")
