"""Renderers, chosen by name: each module turns reports into text for one output format and does nothing else
(``render(reports, stream, show_all)``; ``render_diff(report, stream, show_all)`` for the diff formats).
Adding a format: a module here with those functions, and its name in FORMATS (and DIFF_FORMATS)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from ..deltas import DiffReport
    from ..report import Report

FORMATS = ("table", "json", "sarif", "github", "html")


def renderer(name: str) -> Callable[[list[Report], IO[str], bool], None]:
    """The render function of format ``name``: render(reports, stream, show_all)."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}")
    return importlib.import_module(f"{__name__}.{name}").render


DIFF_FORMATS = ("table", "json", "html")


def diff_renderer(name: str) -> Callable[[DiffReport, IO[str], bool], None]:
    """The diff render function of format ``name``: render_diff(report, stream, show_all)."""
    if name not in DIFF_FORMATS:
        raise ValueError(f"unknown diff format {name!r}")
    return importlib.import_module(f"{__name__}.{name}").render_diff
