"""Human-readable report: one Rich table per file, findings grouped by rule, a summary.

Stays readable at 80 columns, when piped (no colour, no terminal width) and under
NO_COLOR (Rich honours it). Models with many layers collapse the layers without
findings into one line unless ``show_all``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from itertools import groupby
from typing import IO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model import BNLayer, DiffReport, LayerPair, Report, Severity, summarize, summarize_diff
from ..rules import RULES

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
COLLAPSE_ABOVE = 40  # layers; beyond this, healthy layers are folded into one line
FINDINGS_PER_RULE = 8
ROWS_PER_TABLE = 500  # a longer table is printed in pieces (see _print_table)
_VARS = (("gamma", "g"), ("beta", "b"), ("moving_mean", "m"), ("moving_variance", "v"))


def _number(x: float | None) -> str:
    if x is None:
        return "nan"
    return f"{x:.0e}" if x and not 1e-3 <= abs(x) < 1e4 else f"{x:.3g}"


def _stats(layer: BNLayer, role: str, initial: float) -> str:
    if role not in layer.variables:
        return "missing"
    stats = layer.stats.get(role)
    if stats is None:
        return "not read"
    if stats.min == stats.max and not stats.nonfinite:
        text = f"all {_number(stats.min)}"
    else:
        text = f"{_number(stats.min)}..{_number(stats.max)}"
    if stats.nonfinite:
        text += f" {stats.nonfinite}nan"
    return text


def _all_codes(report: Report | DiffReport) -> dict[str | None, Text]:
    """The codes cell of every layer with findings (others: :data:`_OK`), in one pass over the findings."""
    worst: dict[str | None, dict[str, Severity]] = {}
    for finding in report.findings:
        codes = worst.setdefault(finding.layer, {})
        codes[finding.code] = max(codes.get(finding.code, finding.severity), finding.severity)
    return {
        layer: Text(" ").join(Text(code, style=STYLE[sev]) for code, sev in sorted(codes.items()))
        for layer, codes in worst.items()
    }


def _codes(cells: dict[str | None, Text], layer: BNLayer | LayerPair) -> Text:
    cell = cells.get(layer.name)
    return Text("ok", style="green") if cell is None else cell


def _print_table(
    console: Console,
    names: list[str],
    fixed: dict[str, int],
    rows: Iterable[tuple],
    right_aligned: tuple[str, ...] = (),
) -> None:
    """Print ``rows`` as one table whose columns have the ``fixed`` widths; the layer name gets the rest
    of the width and folds. Rich holds a whole table in memory, so a long one (``--all`` on 20,000
    layers) goes out in pieces of ROWS_PER_TABLE rows under the one header: fixed widths line them up."""
    name_width = max(12, min(max(map(len, names)), console.width - sum(fixed.values()) - 2 * len(fixed)))
    table = None
    for number, row in enumerate(rows):
        if table is None:
            table = Table(
                box=box.SIMPLE_HEAD,
                padding=(0, 0, 0, 1),
                show_edge=False,
                pad_edge=False,
                expand=False,
                header_style="bold",
                show_header=not number,
            )
            table.add_column("layer", overflow="fold", width=name_width)
            for column, column_width in fixed.items():
                justify = "right" if column in right_aligned else "left"
                table.add_column(column, overflow="fold", width=column_width, justify=justify)
        table.add_row(*row)
        if table.row_count == ROWS_PER_TABLE:
            console.print(table)
            table = None
    if table is not None:
        console.print(table)


def _layer_table(console: Console, report: Report, show_all: bool) -> int:
    """Print the per-layer table; return how many healthy layers it leaves out.

    Every column but the layer name has a fixed width; the name gets the rest of the
    width and folds, so codes are never cut off, even at 80 columns.
    """
    cells = _all_codes(report)
    fixed = {
        "ch": max(2, *(len(str(layer.channels)) for layer in report.layers)),
        "vars": 11 if any(layer.hints.frozen for layer in report.layers) else 4,
        "moving_mean": 15,
        "moving_variance": 15,
        "codes": max([5, *(len(cells[layer.name]) for layer in report.layers if layer.name in cells)]),  # "ok" < 5
    }
    flagged = {f.layer for f in report.findings}
    collapse = not show_all and len(report.layers) > COLLAPSE_ABOVE
    shown = [layer for layer in report.layers if not collapse or layer.name in flagged]

    def row(layer: BNLayer) -> tuple:
        present = "".join(letter if role in layer.variables else "-" for role, letter in _VARS)
        if layer.hints.frozen:
            present += " frozen"
        moving = (_stats(layer, "moving_mean", 0.0), _stats(layer, "moving_variance", 1.0))
        return (layer.name, str(layer.channels or "?"), present, *moving, _codes(cells, layer))

    _print_table(console, [layer.name for layer in report.layers], fixed, map(row, shown), right_aligned=("ch",))
    return len(report.layers) - len(shown)


def _header(report: Report) -> Text:
    parts = [report.format]
    if report.step is not None:
        parts.append(f"step {report.step} ({report.step_source})")
    parts.append(f"{len(report.layers)} BN layer{'s' if len(report.layers) != 1 else ''}")
    return Text.assemble((report.path, "bold"), "  " + " | ".join(parts))


def _indented(console: Console, text: str, style: str) -> None:
    """A paragraph wrapped to the console width with a two-space hanging indent (no trailing blanks)."""
    width = max(console.width, 20)
    wrapped = textwrap.fill(text, width=width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
    console.print(Text(wrapped, style=style), overflow="ignore", crop=False)


def _notes_and_findings(console: Console, report: Report | DiffReport, show_all: bool) -> None:
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))
    _findings(console, report, show_all)
    console.print()


def _unreadable(line: Text, summary: dict[str, int]) -> None:
    if summary["unreadable"]:
        line.append(f"; {summary['unreadable']} file(s) not fully readable", style="bold red")


def _findings(console: Console, report: Report | DiffReport, show_all: bool) -> None:
    by_rule = groupby(sorted(report.findings, key=lambda f: f.code), key=lambda f: f.code)
    for code, group in by_rule:
        findings = list(group)
        rule = RULES[code]
        worst = max(f.severity for f in findings)
        count = f"{len(findings)} layer{'s' if len(findings) != 1 else ''}"
        console.print(Text.assemble((f"{code} {rule.name}", STYLE[worst]), f"  {worst.label}, {count}"))
        shown = findings if show_all else findings[:FINDINGS_PER_RULE]
        for finding in shown:
            known = " (known: in the baseline)" if finding.known else ""
            _indented(console, f"{finding.layer or '(model)'}: {finding.message}{known}", "dim" if known else "")
        if len(findings) > len(shown):
            console.print(Text(f"  ... and {len(findings) - len(shown)} more (--all lists them)", style="dim"))
        _indented(console, f"fix: {rule.fix}", "dim")


def _counts(s: dict[str, int]) -> Text:
    """'2 errors, 1 warning, 0 info', coloured."""
    return Text.assemble(
        (f"{s['errors']} error{'s' if s['errors'] != 1 else ''}", "bold red" if s["errors"] else ""),
        ", ",
        (f"{s['warnings']} warning{'s' if s['warnings'] != 1 else ''}", "yellow" if s["warnings"] else ""),
        f", {s['infos']} info",
    )


def _source(console: Console, report: Report, label: str = "") -> None:
    """The header line of one input, and what could not be read from it."""
    console.print(Text.assemble(label, _header(report)))
    for error in report.errors:
        console.print(Text(f"error: {error}", style="bold red"))


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Let the caller decide (Rich would exit 1, hiding the real exit status)."""
        raise BrokenPipeError


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    console = _Console(file=stream, highlight=False, soft_wrap=False)
    for report in reports:
        _source(console, report)
        if report.layers:
            hidden = _layer_table(console, report, show_all)
            if hidden:
                console.print(Text(f"... {hidden} layers without findings (--all lists them)", style="dim"))
            console.print(Text("vars: g gamma, b beta, m moving_mean, v moving_variance; - missing", style="dim"))
        _notes_and_findings(console, report, show_all)
    s = summarize(reports)
    line = _counts(s)
    line.append(f" in {s['layers']} BN layers of {s['files']} file{'s' if s['files'] != 1 else ''}")
    if s["known"]:
        line.append(f" ({s['known']} known from the baseline, not failing)", style="dim")
    _unreadable(line, s)
    console.print(line)


# --------------------------------------------------------------------------- diff

_DIFF_COLUMNS = (("gamma", "gamma"), ("beta", "beta"), ("moving_mean", "mean"), ("moving_variance", "variance"))
_DIFF_LEGEND = (
    "cells: max |B-A| over the channels, below it relative to the smaller of max |A|, max |B|; "
    "~ within --rtol/--atol; identical: bit-identical; - not in either"
)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _delta_cell(pair: LayerPair, role: str) -> Text:
    delta = pair.deltas.get(role)
    if delta is None:
        return Text("-", style="dim")
    if delta.status == "identical":
        return Text("identical", style="dim")
    if delta.status == "reshaped":
        return Text(f"{_shape(delta.shape_a)}->{_shape(delta.shape_b)}", style="bold yellow")
    if delta.status in ("added", "removed", "not read"):
        return Text(delta.status, style="bold yellow" if delta.changed else "dim")
    relative = "-" if delta.max_rel is None else f"{100 * delta.max_rel:.3g}%"
    if delta.nonfinite:
        relative = f"{delta.nonfinite} nan"
    within = "~" if delta.status == "within" else ""
    return Text(f"{within}{_number(delta.max_abs)}\n{within}{relative}", style="yellow" if delta.changed else "dim")


def _diff_table(console: Console, report: DiffReport, show_all: bool) -> int:
    """Print one row per paired layer (identical rows one dim line, changed ones two highlighted);
    return how many identical layers without findings it leaves out."""
    cells = _all_codes(report)
    fixed = {label: 9 for _, label in _DIFF_COLUMNS} | {"codes": 5}  # one code a line: rows are 2 lines anyway
    flagged = {f.layer for f in report.findings}
    collapse = not show_all and len(report.pairs) > COLLAPSE_ABOVE
    shown = [pair for pair in report.pairs if not collapse or pair.changed() or pair.name in flagged]

    def row(pair: LayerPair) -> tuple:
        name = Text(pair.name, style="bold" if pair.changed() else "dim")
        return (name, *(_delta_cell(pair, role) for role, _ in _DIFF_COLUMNS), _codes(cells, pair))

    _print_table(console, [pair.name for pair in report.pairs], fixed, map(row, shown))
    return len(report.pairs) - len(shown)


def render_diff(report: DiffReport, stream: IO[str], show_all: bool = False) -> None:
    console = _Console(file=stream, highlight=False, soft_wrap=False)
    for side, side_report in (("A", report.a), ("B", report.b)):
        _source(console, side_report, f"{side} ")
    if report.pairs:
        hidden = _diff_table(console, report, show_all)
        if hidden:
            console.print(Text(f"... {hidden} identical layers without findings (--all lists them)", style="dim"))
        console.print(Text(_DIFF_LEGEND, style="dim"))
    for side, names in (("A", report.only_a), ("B", report.only_b)):
        if names:
            console.print(Text.assemble((f"only in {side}: ", "bold"), ", ".join(names)))
    _notes_and_findings(console, report, show_all)
    s = summarize_diff(report)
    line = _counts(s)
    line.append(f"; {s['paired']} layers paired: {s['changed']} changed, {s['identical']} identical")
    line.append(f"; {s['unpaired']} unpaired")
    _unreadable(line, s)
    console.print(line)
