"""Renderers: each turns reports into text for one output format and does nothing else."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import IO

import numpy as np

from ..model import DiffReport, Report

FORMATS = ("table", "json", "sarif", "github")


def value_summary(value: np.ndarray | None) -> dict[str, float | int | None] | None:
    """min / max / mean over the finite elements, and how many are not finite."""
    if value is None:
        return None
    flat = value.astype(np.float64).ravel()
    mask = np.isfinite(flat)
    finite = flat if mask.all() else flat[mask]
    if not finite.size:
        return {"min": None, "max": None, "mean": None, "nonfinite": int(flat.size)}
    return {  # the ufuncs' reduce directly: ndarray.min/max/mean add overhead that 80,000 variables feel
        "min": float(np.minimum.reduce(finite)),
        "max": float(np.maximum.reduce(finite)),
        "mean": float(np.add.reduce(finite)) / finite.size,  # what ndarray.mean computes for float64
        "nonfinite": int(flat.size - finite.size),
    }


def renderer(name: str) -> Callable[[list[Report], IO[str], bool], None]:
    """The render function of format ``name``: render(reports, stream, show_all)."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}")
    return importlib.import_module(f"{__name__}.{name}").render


DIFF_FORMATS = ("table", "json")


def diff_renderer(name: str) -> Callable[[DiffReport, IO[str], bool], None]:
    """The diff render function of format ``name``: render_diff(report, stream, show_all)."""
    if name not in DIFF_FORMATS:
        raise ValueError(f"unknown diff format {name!r}")
    return importlib.import_module(f"{__name__}.{name}").render_diff
