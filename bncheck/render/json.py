"""Machine-readable report: ``{"version": 1, "files": [...], "summary": {...}}``.

The names in it are a stable interface; fields may be added, never renamed.
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..model import BNLayer, Report, summarize
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
                "findings": [
                    {
                        "code": f.code,
                        "name": f.name,
                        "severity": f.severity.label,
                        "layer": f.layer,
                        "message": f.message,
                    }
                    for f in r.findings
                ],
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
