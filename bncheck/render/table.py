"""Human-readable report: a table of layers per file, findings grouped by rule, a summary.

Fits the terminal's width (80 when piped; see :mod:`.terminal`) with the layouts of :mod:`.layout`: a layer
name of up to 40 characters whole on its line, codes never cut, no trailing blanks. Models with many layers
collapse the layers without findings into one line unless ``show_all``. Rows are formatted and written one
at a time: a table of 20,000 layers is never held in memory (only the texts of its statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import groupby
from typing import IO

from ..deltas import DiffReport, LayerPair
from ..findings import Severity, Statement, codes_by_layer
from ..layers import BNLayer
from ..outcome import diff_totals, totals
from ..report import Report
from .layout import Cell, Codes, Column, Layout, arrange, paragraph, words
from .terminal import Terminal, detect

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
STYLES = (*STYLE.values(), "green", "bold", "dim", "bold yellow")
COLLAPSE_ABOVE = 40  # layers; beyond this, healthy layers are folded into one line
FINDINGS_PER_RULE = 8
_VARS = (("gamma", "g"), ("beta", "b"), ("moving_mean", "m"), ("moving_variance", "v"))
_ROLES = {role for role, _ in _VARS}
_OK: Codes = (("ok", "green"),)
_VARS_LEGEND = "vars: g gamma, b beta, m moving_mean, v moving_variance; - missing"
_COMPLETE_LEGEND = "every layer has gamma, beta, moving_mean, moving_variance"


class _Out:
    """Lines to a stream, painted and wrapped for its terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self.term: Terminal = detect(stream, STYLES)
        self.stream = stream

    def lines(self, lines: Iterable[str]) -> None:
        self.stream.write(self.term.encodable("".join(f"{line}\n" for line in lines)))

    def text(self, items: Iterable[tuple[str, str, str]], first: str = "") -> None:
        """A paragraph of (separator, word, style) items after ``first``, wrapped with a two-space hanging indent."""
        self.lines(paragraph(items, self.term.width, self.term, first))


def _number(x: float | None) -> str:
    if x is None:
        return "nan"
    return f"{x:.0e}" if x and not 1e-3 <= abs(x) < 1e4 else f"{x:.3g}"


def _stats(layer: BNLayer, role: str) -> str:
    if role not in layer.variables:
        return "missing"
    try:
        stats = layer.stats[role]
    except KeyError:
        return "not read"
    if stats.min == stats.max and not stats.nonfinite:
        text = f"all {_number(stats.min)}"
    else:
        text = f"{_number(stats.min)}..{_number(stats.max)}"
    if stats.nonfinite:
        text += f" {stats.nonfinite}nan"
    return text


def _present(layer: BNLayer) -> str:
    """The vars cell: a letter per BN variable present, "-" per one missing, then "frozen" if it is."""
    if layer.variables.keys() >= _ROLES:
        present = "gbmv"
    else:
        present = "".join(letter if role in layer.variables else "-" for role, letter in _VARS)
    return present if layer.hints.trainable else f"{present} frozen"


def _all_codes(report: Report | DiffReport) -> dict[str | None, Codes]:
    """The codes cell of every layer with findings (others: ``_OK``), in one pass over the findings."""
    worst = codes_by_layer(report.findings)
    return {layer: tuple((code, STYLE[sev]) for code, sev in codes.items()) for layer, codes in worst.items()}


Row = tuple[Cell, Sequence[Cell], Codes]  # name, cells, codes


def _table(out: _Out, columns: Sequence[Column], rows: Callable[[], Iterator[Row]]) -> Layout:
    """Print the rows under ``columns`` (the cells' titles; widths measured here); return the layout used.

    ``rows`` is called twice, to measure the columns and to print; nothing is kept in between."""
    name_width, widths, distinct_codes = 5, [0] * len(columns), set()
    for name, cells, codes in rows():
        name_width = max(name_width, len(name[0]))
        for i, (text, _) in enumerate(cells):
            widths[i] = max(widths[i], max(map(len, text.split("\n"))) if "\n" in text else len(text))
        distinct_codes.add(codes)  # most rows share a few
    codes_width = max([5, *(sum(len(code) + 1 for code, _ in codes) - 1 for codes in distinct_codes)])
    widest_code = max((len(code) for codes in distinct_codes for code, _ in codes), default=0)
    middle = [replace(column, width=width) for column, width in zip(columns, widths, strict=True)]
    layout = arrange(out.term.width, Column("layer", name_width), middle, Column("codes", codes_width), widest_code)
    term = out.term
    out.lines(layout.header(term))
    for name, cells, codes in rows():
        out.lines(layout.lines(name, cells, codes, term))
    return layout


def _header(report: Report, label: str = "") -> list[tuple[str, str, str]]:
    """The first line of one input: path, format, step, layer count (breaks only between them)."""
    parts = [f"step {report.step.count} ({report.step.source})"] if report.step is not None else []
    parts.append(_plural(len(report.layers), "BN layer"))
    return [
        *([("", label, "")] if label else []),
        (" " if label else "", report.path, "bold"),
        ("  ", report.format, ""),
        *((" ", f"| {part}", "") for part in parts),
    ]


def _source(out: _Out, report: Report, label: str = "") -> None:
    """The header line of one input, and what could not be read from it."""
    out.text(_header(report, label))
    for error in report.errors:
        out.text(words(f"error: {error}", "bold red", ""))


def _notes_and_findings(
    out: _Out, report: Report | DiffReport, show_all: bool, statements: Sequence[Statement] = ()
) -> None:
    """Notes, then the findings grouped by rule; a rule that fired on every layer (a ``statement``) is said
    once, with one layer's finding as the example, unless ``show_all``."""
    for note in report.notes:
        out.text(words(f"note: {note}", "dim", ""))
    model_wide = {statement.code: statement for statement in statements}
    by_rule = groupby(sorted(report.findings, key=lambda f: f.code), key=lambda f: f.code)
    for code, group in by_rule:
        findings = list(group)
        worst = max(f.severity for f in findings)
        out.text(
            [
                ("", f"{code} {findings[0].name}", STYLE[worst]),
                ("  ", f"{worst.label}, {_plural(len(findings), 'layer')}", ""),
            ]
        )
        if statement := model_wide.get(code):
            out.text(words(f"(model): {statement.message}"), "  ")
        shown = findings if show_all else findings[: 1 if statement else FINDINGS_PER_RULE]
        for finding in shown:
            known = " (known: in the baseline)" if finding.known else ""
            out.text(words(f"{finding.layer or '(model)'}: {finding.message}{known}", "dim" if known else ""), "  ")
        if len(findings) > len(shown):
            out.text(words(f"... and {len(findings) - len(shown)} more (--all lists them)", "dim"), "  ")
        out.text(words(f"fix: {findings[0].fix}", "dim"), "  ")
    out.lines([""])


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _summary(out: _Out, s: dict[str, int], tail: list[tuple[str, str, str]]) -> None:
    """'2 errors, 1 warning, 0 info' coloured, then the ``tail`` items; lines break between the parts."""
    items = [
        ("", _plural(s["errors"], "error"), "bold red" if s["errors"] else ""),
        ("", ",", ""),
        (" ", _plural(s["warnings"], "warning"), "yellow" if s["warnings"] else ""),
        ("", ",", ""),
        (" ", f"{s['infos']} info", ""),
        *tail,
    ]
    if s["unreadable"]:
        items += [("", ";", "bold red"), (" ", f"{s['unreadable']} file(s) not fully readable", "bold red")]
    out.text(items)


# --------------------------------------------------------------------------- inspect


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    out = _Out(stream)
    for report in reports:
        _source(out, report)
        if report.layers:
            shown, legend = _layer_table(out, report, show_all)
            if hidden := len(report.layers) - shown:
                other = " other than the model-wide ones" if report.statements else ""
                out.text(words(f"... {hidden} layers without findings{other} (--all lists them)", "dim", ""))
            if shown:
                out.text(words(legend, "dim", ""))
        _notes_and_findings(out, report, show_all, report.statements)
    s = totals(reports)
    tail = [(" ", f"in {_plural(s['layers'], 'BN layer')} of {_plural(s['files'], 'file')}", "")]
    if s["known"]:
        tail.append((" ", f"({s['known']} known from the baseline, not failing)", "dim"))
    _summary(out, s, tail)


def _layer_table(out: _Out, report: Report, show_all: bool) -> tuple[int, str]:
    """Print the per-layer table (nothing when no layer is shown); return how many rows it has and its legend."""
    codes = _all_codes(report)
    collapse = not show_all and len(report.layers) > COLLAPSE_ABOVE
    stated = {statement.code for statement in report.statements}  # said once for the model: no row needed
    flagged = {f.layer for f in report.findings if f.code not in stated}
    shown = [layer for layer in report.layers if not collapse or layer.name in flagged]
    if not shown:
        return 0, ""
    complete = all(layer.variables.keys() >= _ROLES and layer.hints.trainable for layer in report.layers)

    statistics = [(_stats(layer, "moving_mean"), _stats(layer, "moving_variance")) for layer in shown]  # made once

    def rows() -> Iterator[Row]:
        for layer, (mean, variance) in zip(shown, statistics, strict=True):
            cells = ((str(layer.channels or "?"), ""), (_present(layer), ""), (mean, ""), (variance, ""))
            yield (layer.name, ""), cells, codes.get(layer.name, _OK)

    columns = (
        Column("ch", 0, right=True),
        Column("vars", 0, optional=complete),
        Column("moving_mean", 0, short="mean"),
        Column("moving_variance", 0, short="variance"),
    )
    layout = _table(out, columns, rows)
    return len(shown), _VARS_LEGEND if layout.shows(2) else _COMPLETE_LEGEND


# --------------------------------------------------------------------------- diff

_DIFF_COLUMNS = (("gamma", "gamma"), ("beta", "beta"), ("moving_mean", "mean"), ("moving_variance", "variance"))
_DIFF_LEGEND = (
    "cells: max |B-A| over the channels, below it relative to the smaller of max |A|, max |B|; "
    "~ within --rtol/--atol; identical: bit-identical; - not in either"
)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _delta_cell(pair: LayerPair, role: str) -> Cell:
    delta = pair.deltas.get(role)
    if delta is None:
        return "-", "dim"
    if delta.status == "identical":
        return "identical", "dim"
    if delta.status == "reshaped":
        return f"{_shape(delta.shape_a)}->{_shape(delta.shape_b)}", "bold yellow"
    if delta.status not in ("changed", "within"):  # added, removed, not read, not mapped: no numbers
        return delta.status, "bold yellow" if delta.changed else "dim"
    relative = "-" if delta.max_rel is None else f"{100 * delta.max_rel:.3g}%"
    if delta.nonfinite:
        relative = f"{delta.nonfinite} nan"
    within = "~" if delta.status == "within" else ""
    return f"{within}{_number(delta.max_abs)}\n{within}{relative}", "yellow" if delta.changed else "dim"


def _diff_table(out: _Out, report: DiffReport, show_all: bool) -> int:
    """Print one row per paired layer (identical rows one dim line, changed ones two highlighted);
    return how many rows it has."""
    codes = _all_codes(report)
    collapse = not show_all and len(report.pairs) > COLLAPSE_ABOVE
    shown = [pair for pair in report.pairs if not collapse or pair.changed() or pair.name in codes]
    if not shown:
        return 0

    def rows() -> Iterator[Row]:
        for pair in shown:
            name = (pair.name, "bold" if pair.changed() else "dim")
            yield name, [_delta_cell(pair, role) for role, _ in _DIFF_COLUMNS], codes.get(pair.name, _OK)

    _table(out, [Column(label, 0) for _, label in _DIFF_COLUMNS], rows)
    return len(shown)


def render_diff(report: DiffReport, stream: IO[str], show_all: bool = False) -> None:
    out = _Out(stream)
    for side, side_report in (("A", report.a), ("B", report.b)):
        _source(out, side_report, side)
    if report.pairs:
        shown = _diff_table(out, report, show_all)
        if hidden := len(report.pairs) - shown:
            out.text(words(f"... {hidden} identical layers without findings (--all lists them)", "dim", ""))
        if shown:
            out.text(words(_DIFF_LEGEND, "dim", ""))
    for side, names in (("A", report.only_a), ("B", report.only_b)):
        if names:
            out.text([("", f"only in {side}:", "bold"), *words(", ".join(names))])
    _notes_and_findings(out, report, show_all)
    s = diff_totals(report)
    paired = f"{_plural(s['paired'], 'layer')} paired: {s['changed']} changed, {s['identical']} identical"
    _summary(out, s, [("", ";", ""), (" ", paired, ""), ("", ";", ""), (" ", f"{s['unpaired']} unpaired", "")])
