"""Human-readable report: one Rich table per file, findings grouped by rule, a summary.

Stays readable at 80 columns, when piped (no colour, no terminal width) and under
NO_COLOR (Rich honours it). Models with many layers collapse the layers without
findings into one line unless ``show_all``.
"""

from __future__ import annotations

from itertools import groupby
from typing import IO

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ..model import BNLayer, Report, Severity, summarize
from ..rules import RULES
from . import value_summary

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
COLLAPSE_ABOVE = 40  # layers; beyond this, healthy layers are folded into one line
FINDINGS_PER_RULE = 8
_VARS = (("gamma", "g"), ("beta", "b"), ("moving_mean", "m"), ("moving_variance", "v"))


def _number(x: float | None) -> str:
    if x is None:
        return "nan"
    return f"{x:.1e}" if x and not 1e-3 <= abs(x) < 1e4 else f"{x:.3g}"


def _stats(layer: BNLayer, role: str, initial: float) -> str:
    if role not in layer.variables:
        return "missing"
    summary = value_summary(layer.values.get(role))
    if summary is None:
        return "not read"
    if summary["min"] == summary["max"] and not summary["nonfinite"]:
        text = f"all {_number(summary['min'])}"
    else:
        text = f"{_number(summary['min'])}..{_number(summary['max'])}"
    if summary["nonfinite"]:
        text += f" {summary['nonfinite']}nan"
    return text


def _codes(report: Report, layer: BNLayer) -> Text:
    worst: dict[str, Severity] = {}
    for finding in report.findings:
        if finding.layer == layer.name:
            worst[finding.code] = max(worst.get(finding.code, finding.severity), finding.severity)
    if not worst:
        return Text("ok", style="green")
    return Text(" ").join(Text(code, style=STYLE[sev]) for code, sev in sorted(worst.items()))


def _layer_table(report: Report, show_all: bool, width: int) -> tuple[Table, int]:
    """The per-layer table, and how many healthy layers it leaves out.

    Every column but the layer name has a fixed width; the name gets the rest of
    ``width`` and folds, so codes are never cut off, even at 80 columns.
    """
    codes = {layer.name: _codes(report, layer) for layer in report.layers}
    fixed = {
        "ch": max(2, *(len(str(layer.channels)) for layer in report.layers)),
        "vars": 11 if any(layer.hints.frozen for layer in report.layers) else 4,
        "moving_mean": 16,
        "moving_variance": 16,
        "codes": max(5, *(len(c) for c in codes.values())),
    }
    longest = max(len(layer.name) for layer in report.layers)
    name_width = max(12, min(longest, width - sum(fixed.values()) - 3 * len(fixed)))
    table = Table(show_edge=False, pad_edge=False, expand=False, header_style="bold")
    table.add_column("layer", overflow="fold", width=name_width)
    for column, column_width in fixed.items():
        table.add_column(column, overflow="fold", width=column_width, justify="right" if column == "ch" else "left")
    flagged = {f.layer for f in report.findings}
    collapse = not show_all and len(report.layers) > COLLAPSE_ABOVE
    hidden = 0
    for layer in report.layers:
        if collapse and layer.name not in flagged:
            hidden += 1
            continue
        present = "".join(letter if role in layer.variables else "-" for role, letter in _VARS)
        if layer.hints.frozen:
            present += " frozen"
        table.add_row(
            layer.name,
            str(layer.channels or "?"),
            present,
            _stats(layer, "moving_mean", 0.0),
            _stats(layer, "moving_variance", 1.0),
            codes[layer.name],
        )
    return table, hidden


def _header(report: Report) -> Text:
    parts = [report.format]
    if report.step is not None:
        parts.append(f"step {report.step} ({report.step_source})")
    parts.append(f"{len(report.layers)} BN layer{'s' if len(report.layers) != 1 else ''}")
    return Text.assemble((report.path, "bold"), "  " + " | ".join(parts))


def _findings(console: Console, report: Report, show_all: bool) -> None:
    by_rule = groupby(sorted(report.findings, key=lambda f: f.code), key=lambda f: f.code)
    for code, group in by_rule:
        findings = list(group)
        rule = RULES[code]
        worst = max(f.severity for f in findings)
        count = f"{len(findings)} layer{'s' if len(findings) != 1 else ''}"
        console.print(Text.assemble((f"{code} {rule.name}", STYLE[worst]), f"  {worst.label}, {count}"))
        shown = findings if show_all else findings[:FINDINGS_PER_RULE]
        for finding in shown:
            console.print(Padding(Text(f"{finding.layer or '(model)'}: {finding.message}"), (0, 0, 0, 2), expand=False))
        if len(findings) > len(shown):
            console.print(Text(f"  ... and {len(findings) - len(shown)} more (--all lists them)", style="dim"))
        console.print(Padding(Text(f"fix: {rule.fix}", style="dim"), (0, 0, 0, 2), expand=False))


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    console = Console(file=stream, highlight=False, soft_wrap=False)
    for report in reports:
        console.print(_header(report))
        for error in report.errors:
            console.print(Text(f"error: {error}", style="bold red"))
        if report.layers:
            table, hidden = _layer_table(report, show_all, console.width)
            if table.row_count:
                console.print(table)
            if hidden:
                console.print(Text(f"... {hidden} layers without findings (--all lists them)", style="dim"))
            console.print(Text("vars: g gamma, b beta, m moving_mean, v moving_variance; - missing", style="dim"))
        for note in report.notes:
            console.print(Text(f"note: {note}", style="dim"))
        _findings(console, report, show_all)
        console.print()
    s = summarize(reports)
    line = Text.assemble(
        (f"{s['errors']} error{'s' if s['errors'] != 1 else ''}", "bold red" if s["errors"] else ""),
        ", ",
        (f"{s['warnings']} warning{'s' if s['warnings'] != 1 else ''}", "yellow" if s["warnings"] else ""),
        f", {s['infos']} info in {s['layers']} BN layers of {s['files']} file{'s' if s['files'] != 1 else ''}",
    )
    if s["unreadable"]:
        line.append(f"; {s['unreadable']} file(s) not fully readable", style="bold red")
    console.print(line)
