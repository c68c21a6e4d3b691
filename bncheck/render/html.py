"""A report to look at: one self-contained HTML file (style, script and data inline; nothing fetched).

Per model: the header facts, the findings grouped by rule with their fixes, charts along the depth of the
network (:mod:`.charts`) and a sortable, filterable, paged table of the layers, which ``page.js`` builds from
the data embedded in the page (:mod:`.page_data`; ``<script type="application/json" id="bncheck-data">``).
For a diff: the relative change of each variable along the depth, and the pairs' table. Findings are listed
up to FINDINGS_PER_RULE per rule; the table's filter finds all of them (type the code).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from html import escape
from importlib.resources import files
from itertools import groupby
from typing import IO

from .. import __version__
from ..deltas import DiffReport
from ..findings import Finding, Statement
from ..outcome import diff_totals, severity_counts, totals
from ..report import Report
from ..rules import RULES
from ..thresholds import Thresholds, framework_defaults
from .charts import SHAPES, depth_chart, number
from .page_data import (
    CHARTS,
    Marks,
    change_columns,
    chart_columns,
    diff_data,
    inspect_data,
    model_marks,
)

FINDINGS_PER_RULE = 50  # in the page; the table's filter finds the others
FINDINGS_OPEN = 8  # of them in view, the others behind 'N more'
_ROLE_NAMES = ("gamma", "beta", "moving_mean", "moving_variance")


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    marks = model_marks(reports)
    title = reports[0].path if len(reports) == 1 else f"{len(reports)} models"
    body: list[str] = [_summary(totals(reports))]
    if len(reports) > 1:
        body.append(_contents(reports))
    for m, (report, mark) in enumerate(zip(reports, marks, strict=True)):
        body.extend(_model(m, report, mark, show_all))
    _page(stream, f"bncheck inspect: {title}", body, inspect_data(reports, marks))


def render_diff(report: DiffReport, stream: IO[str], show_all: bool = False) -> None:
    marks = Marks(report.findings, "d-")
    summary = diff_totals(report)
    body = [
        _summary(summary),
        '<section class="model">',
        f"<h2>{escape(report.a.path)} → {escape(report.b.path)}</h2>",
        _facts(
            [
                *((f"{side}", _source(r)) for side, r in (("A", report.a), ("B", report.b))),
                ("layers", _pairs(summary)),
                *([("only in A", ", ".join(report.only_a))] if report.only_a else []),
                *([("only in B", ", ".join(report.only_b))] if report.only_b else []),
            ]
        ),
        *_problems([*report.a.errors, *report.b.errors], report.notes),
        *_findings(report.findings, [], marks, show_all),
        "<h3>Change along the depth</h3>",
        '<p class="legend">' + _series_legend() + " — largest |B &#8722; A| / max(|A|) per variable, log scale; "
        "no point: identical; shaded: frozen</p>",
        depth_chart("relative change per variable", change_columns(report, marks), log=True, series=_ROLE_NAMES),
        '<h3>Layers</h3><div class="table" data-model="diff"></div>',
        "</section>",
    ]
    _page(stream, f"bncheck diff: {report.a.path} → {report.b.path}", body, diff_data(report, marks))


def _page(stream: IO[str], title: str, body: Iterable[str], data: dict) -> None:
    assets = files(__package__)
    style = assets.joinpath("page.css").read_text(encoding="utf-8")
    script = assets.joinpath("page.js").read_text(encoding="utf-8")
    stream.write(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="bncheck {escape(__version__)}">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n<style>\n{style}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1></header>\n<main>\n"
    )
    for part in body:
        stream.write(part)
        stream.write("\n")
    # no "<" in the script element's text ("</script>", "<!--" in a layer name): JSON's \u003c instead
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    stream.write(
        f'</main>\n<script type="application/json" id="bncheck-data">{payload}</script>\n'
        f"<script>\n{script}</script>\n</body>\n</html>\n"
    )


def _pairs(summary: dict[str, int]) -> str:
    return f"{summary['paired']} paired: {summary['changed']} changed, {summary['identical']} identical"


def _summary(counts: dict[str, int]) -> str:
    parts = [f'<span class="count {key}">{escape(key)}: {value}</span>' for key, value in counts.items()]
    return f'<p class="summary">{" ".join(parts)}</p>'


def _contents(reports: Sequence[Report]) -> str:
    items = []
    for m, report in enumerate(reports):
        counts = severity_counts(report.findings)  # errors, warnings, infos
        badge = " ".join(
            f'<span class="badge {key[:-1]}">{count} {key[:-1]}</span>' for key, count in counts.items() if count
        )
        state = badge or ('<span class="badge error">unreadable</span>' if report.errors else "no findings")
        items.append(f'<li><a href="#m{m}">{escape(report.path)}</a> {state}</li>')
    return f"<nav><h2>Models</h2><ul>{''.join(items)}</ul></nav>"


def _source(report: Report) -> str:
    step = f", step {report.step.count} ({report.step.source})" if report.step is not None else ""
    return f"{report.path} — {report.format}{step}, {len(report.layers)} BN layers"


def _momentum(report: Report) -> str:
    """Where the momentum of the layers came from: the file, or the framework's default."""
    recorded = sorted({layer.hints.momentum for layer in report.layers if layer.hints.momentum is not None})
    count = sum(layer.hints.momentum is not None for layer in report.layers)
    framework = report.framework.value if report.framework else None
    default, _, named = framework_defaults(Thresholds(), framework)
    values = ", ".join(number(m) for m in recorded[:4]) + (", …" if len(recorded) > 4 else "")
    if count and count == len(report.layers):
        return f"{values} (recorded in the file)"
    fallback = f"{named} ({number(default)}, as the weight of the history)"
    if count:
        return f"{values} recorded for {count} of {len(report.layers)} layers; the others: {fallback}"
    return f"not recorded in the file: {fallback}"


def _facts(items: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{escape(key)}</dt><dd>{escape(value)}</dd>" for key, value in items)
    return f'<dl class="facts">{rows}</dl>'


def _problems(errors: Sequence[str], notes: Sequence[str]) -> Iterator[str]:
    for error in errors:
        yield f'<p class="problem error">error: {escape(error)}</p>'
    for note in notes:
        yield f'<p class="problem note">note: {escape(note)}</p>'


def _model(m: int, report: Report, marks: Marks, show_all: bool) -> Iterator[str]:
    frozen = sum(not layer.hints.trainable for layer in report.layers)
    yield f'<section class="model" id="m{m}">'
    yield f"<h2>{escape(report.path)}</h2>"
    yield _facts(
        [
            ("format", report.format),
            *([("framework", report.framework.value)] if report.framework else []),
            ("step", f"{report.step.count} ({report.step.source})" if report.step is not None else "not recorded"),
            ("BN layers", f"{len(report.layers)}" + (f", {frozen} frozen" if frozen else "")),
            ("momentum", _momentum(report)),
        ]
    )
    yield from _problems(report.errors, report.notes)
    yield from _findings(report.findings, report.statements, marks, show_all)
    if report.layers:
        yield "<h3>Along the depth</h3>"
        yield (
            '<p class="legend">one column per layer in the order of the report; marks: '
            '<span class="key error">▲ error</span> <span class="key warning">◆ warning</span> '
            '<span class="key info">● info</span>; shaded: frozen; ▼ values ≤ 0 off a log scale; &#215; NaN or Inf</p>'
        )
        for key, title, stats_key, log in CHARTS:
            columns = chart_columns(report, stats_key, marks)
            if any(c.values != (None, None) for c in columns):
                yield f"<h4>{escape(title)}</h4>"
                yield depth_chart(title, columns, log=log, chart_id=f"m{m}-{key}")
        yield f'<h3>Layers</h3><div class="table" data-model="{m}"></div>'
    yield "</section>"


def _findings(
    findings: Sequence[Finding], statements: Sequence[Statement], marks: Marks, show_all: bool
) -> Iterator[str]:
    """The findings grouped by rule: its code, name, severity and fix; the findings, FINDINGS_PER_RULE of each
    rule unless ``show_all``."""
    if not findings:
        yield '<p class="clean">No findings.</p>'
        return
    yield "<h3>Findings</h3>"
    model_wide = {statement.code: statement for statement in statements}
    numbered = sorted(enumerate(findings), key=lambda item: item[1].code)
    for code, group in groupby(numbered, key=lambda item: item[1].code):
        items = list(group)
        first = items[0][1]
        severity = max(f.severity for _, f in items).label
        rule = RULES.get(code)
        summary = escape(rule.summary) if rule else ""
        yield f'<section class="rule {severity}" id="{marks.prefix}{escape(code)}">'
        yield (
            f'<h4><span class="badge {severity}">{severity}</span> {escape(code)} {escape(first.name)}'
            f' <span class="muted">— {len(items)} finding{"s" if len(items) != 1 else ""}: {summary}</span></h4>'
        )
        if code in model_wide:
            yield f'<p class="statement">every layer: {escape(model_wide[code].message)}</p>'
        shown = items if show_all else items[:FINDINGS_PER_RULE]
        first_shown = 1 if code in model_wide else FINDINGS_OPEN  # a model-wide rule: one example in view
        yield "<ul>" + "".join(_finding(marks, i, f) for i, f in shown[:first_shown]) + "</ul>"
        if len(shown) > first_shown:
            yield (
                f"<details><summary>{len(shown) - first_shown} more</summary><ul>"
                + "".join(_finding(marks, i, f) for i, f in shown[first_shown:])
                + "</ul></details>"
            )
        if len(items) > len(shown):
            yield (
                f'<p class="muted">… and {len(items) - len(shown)} more: type {escape(code)} in the table\'s '
                "filter (--all lists them here)</p>"
            )
        for fix in dict.fromkeys(f.fix for _, f in items if f.fix):
            yield f'<p class="fix">fix: {escape(fix)}</p>'
        yield "</section>"


def _finding(marks: Marks, i: int, finding: Finding) -> str:
    where = escape(finding.layer or "(model)")
    known = ' <span class="badge known">baseline</span>' if finding.known else ""
    return f'<li id="{marks.finding_id(i)}"><code>{where}</code>{known}: {escape(finding.message)}</li>'


def _series_legend() -> str:
    return " ".join(
        f'<span class="key s-{shape}">{symbol} {escape(role)}</span>'
        for role, shape, symbol in zip(_ROLE_NAMES, SHAPES, ("●", "■", "▲", "◆"), strict=True)
    )
