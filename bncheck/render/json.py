"""Machine-readable report: ``{"version": 1, "files": [...], "summary": {...}}``.

The names in it are a stable interface; fields may be added, never renamed. Indented like
``json.dump(indent=2)``, except that every layer and every finding is one line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..deltas import Delta, DiffReport, LayerPair
from ..findings import Finding, Severity, Statement, codes_by_layer
from ..layers import BNLayer
from ..outcome import diff_totals, totals
from ..report import Report
from ..stats import Stats

VERSION = 1


def _layer(layer: BNLayer, codes: dict[str | None, dict[str, Severity]]) -> dict[str, Any]:
    return {
        "name": layer.name,
        "channels": layer.channels,
        "variables": {
            role: {
                "key": variable.key,
                "dtype": variable.dtype,
                "shape": list(variable.shape),
                "stats": _stats(layer.stats.get(role)),
            }
            for role, variable in layer.variables.items()
        },
        "momentum": _finite(layer.hints.momentum),
        "epsilon": _finite(layer.hints.epsilon),
        "frozen": not layer.hints.trainable,
        "num_batches_tracked": layer.hints.batches_tracked,  # PyTorch's count of updates; null elsewhere
        "codes": list(codes.get(layer.name, ())),
        "unreadable": layer.unreadable,
    }


def _finite(number: float | None) -> float | None:
    """JSON has no NaN or Infinity: a number that is not finite (an epsilon of NaN in a damaged file,
    a difference that overflows) is written as null."""
    return number if number is None or math.isfinite(number) else None


def _stats(stats: Stats | None) -> dict[str, float | int | None] | None:
    if stats is None:
        return None
    return {"min": stats.min, "max": stats.max, "mean": _finite(stats.mean), "nonfinite": stats.nonfinite}


def _layers(report: Report) -> Iterator[dict[str, Any]]:
    codes = codes_by_layer(report.findings)
    for layer in report.layers:
        yield _layer(layer, codes)


def finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "code": f.code,
        "name": f.name,
        "severity": f.severity.label,
        "layer": f.layer,
        "message": f.message,
        "fix": f.fix,
        "known": f.known,
    }


def statement_dict(statement: Statement) -> dict[str, Any]:
    return {
        "code": statement.code,
        "severity": statement.severity.label,
        "layers": statement.layers,
        "message": statement.message,
    }


def as_dict(reports: list[Report]) -> dict[str, Any]:
    """The report as JSON values; ``Rows`` stand for the long lists (layers, findings), made one item at a time."""
    return {
        "version": VERSION,
        "files": [
            {
                "path": r.path,
                "file": r.main_file,
                "format": r.format,
                "framework": r.framework.value if r.framework else None,
                "step": r.step.count if r.step else None,
                "step_source": r.step.source if r.step else None,
                "layers": Rows(_layers(r)),
                "findings": Rows(finding_dict(f) for f in r.findings),
                "statements": [statement_dict(s) for s in r.statements],
                "notes": r.notes,
                "errors": r.errors,
            }
            for r in reports
        ],
        "summary": totals(reports),
    }


class Rows:
    """A JSON array written one compact item per line, each item made only when written: a model's
    layers and findings can number tens of thousands, and neither their dicts nor their text are
    ever all in memory."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


# The C encoder (no indent); no check for cycles: the items are trees made here
_compact = json.JSONEncoder(allow_nan=False, separators=(", ", ": "), check_circular=False).encode


def dump(value: Any, stream: IO[str], pad: str = "") -> None:
    """Write ``value`` (dicts with str keys) as ``json.dump(indent=2)`` would, except that ``Rows``
    put one item per line."""
    inner = pad + "  "
    if isinstance(value, Rows):
        opened = False
        for item in value.items:
            stream.write(("[\n" if not opened else ",\n") + inner + _compact(item))
            opened = True
        stream.write(f"\n{pad}]" if opened else "[]")
    elif isinstance(value, dict) and value:
        for i, (key, item) in enumerate(value.items()):
            stream.write(("{\n" if not i else ",\n") + inner + json.dumps(key) + ": ")
            dump(item, stream, inner)
        stream.write(f"\n{pad}}}")
    elif isinstance(value, (list, tuple)) and value:
        for i, item in enumerate(value):
            stream.write(("[\n" if not i else ",\n") + inner)
            dump(item, stream, inner)
        stream.write(f"\n{pad}]")
    else:
        stream.write(json.dumps(value, allow_nan=False))


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    dump(as_dict(reports), stream)
    stream.write("\n")


def _delta(delta: Delta) -> dict[str, Any]:
    return {
        "status": delta.status,
        "max_abs": _finite(delta.max_abs),
        "max_rel": _finite(delta.max_rel),
        "shape_a": None if delta.shape_a is None else list(delta.shape_a),
        "shape_b": None if delta.shape_b is None else list(delta.shape_b),
        "nonfinite": delta.nonfinite,
    }


def _pair(pair: LayerPair, codes: dict[str | None, dict[str, Severity]]) -> dict[str, Any]:
    return {
        "name": pair.name,
        **{role: _delta(delta) for role, delta in pair.deltas.items()},
        "changed": pair.changed(),
        "variance_ratio": _finite(pair.variance_ratio),
        "bessel_n": pair.bessel,
        "codes": list(codes.get(pair.name, ())),
    }


def _pairs(report: DiffReport) -> Iterator[dict[str, Any]]:
    codes = codes_by_layer(report.findings)
    for pair in report.pairs:
        yield _pair(pair, codes)


def diff_as_dict(report: DiffReport) -> dict[str, Any]:
    return {
        "version": VERSION,
        "a": report.a.path,
        "b": report.b.path,
        "sources": {
            side: {
                "format": r.format,
                "framework": r.framework.value if r.framework else None,
                "step": r.step.count if r.step else None,
                "step_source": r.step.source if r.step else None,
                "layers": len(r.layers),
            }
            for side, r in (("a", report.a), ("b", report.b))
        },
        "layers": Rows(_pairs(report)),
        "unpaired": {"a": report.only_a, "b": report.only_b},
        "findings": Rows(finding_dict(f) for f in report.findings),
        "notes": report.notes,
        "errors": report.errors,
        "summary": diff_totals(report),
    }


def render_diff(report: DiffReport, stream: IO[str], show_all: bool = False) -> None:
    dump(diff_as_dict(report), stream)
    stream.write("\n")
