"""Renderers: each turns reports into text for one output format and does nothing else."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import IO

from ..model import DiffReport, Report

FORMATS = ("table", "json", "sarif", "github")


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
