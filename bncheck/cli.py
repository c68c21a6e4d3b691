"""The command line: options -> Settings, run the core, pick a renderer, exit code.

Heavy modules (numpy, rich, protobuf) are imported inside the commands so that
``bncheck --help`` starts instantly; TensorFlow is never imported.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click

from . import __version__

if TYPE_CHECKING:
    from .config import Settings

SEVERITIES = ("error", "warning", "info", "never")
FORMATS = ("table", "json", "sarif", "github")  # as bncheck.render.FORMATS, without importing it


def _split(values: tuple[str, ...]) -> list[str]:
    """Accept repeated and comma-separated values ('BN00', 'BN002,BN006')."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bncheck")
def main() -> None:
    """Lint the BatchNormalization state of saved TensorFlow / Keras models."""
    # A short-lived process that builds one object per saved variable (80,000 in large checkpoints) and few
    # cycles: collecting every 700 allocations cost 0.3 s of 2.5 s there; every 100,000 is plenty.
    gc.set_threshold(100_000, 50, 100)


def _settings(
    config: str | None,
    fail_on: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    thresholds: tuple[str, ...],
    exclude: tuple[str, ...],
) -> Settings:
    """[tool.bncheck] of --config or the nearest pyproject.toml, overlaid by the command line."""
    from dataclasses import replace
    from pathlib import Path

    from .config import check_codes, find_pyproject, load_file, parse_fail_on, settings_from

    source = Path(config) if config else find_pyproject(Path.cwd())
    table = load_file(source, required=bool(config)) if source else {}
    settings = settings_from(table, str(source))
    pairs = {}
    for item in thresholds:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--threshold")
        pairs[key.strip()] = value.strip()
    return replace(
        settings,
        fail_on=parse_fail_on(fail_on, "--fail-on") if fail_on else settings.fail_on,
        select=check_codes(_split(select), "--select") if select else settings.select,
        ignore=check_codes(_split(ignore), "--ignore") if ignore else settings.ignore,
        thresholds=settings.thresholds.updated(pairs, "--threshold"),
        exclude=settings.exclude + tuple(exclude),
    )


def _emit(render: Callable[[Any, IO[str], bool], None], payload: Any, output: str | None, show_all: bool) -> None:
    """Render to ``output`` or stdout; a reader that leaves the pipe early does not change the exit status."""
    if output:
        try:
            with open(output, "w", encoding="utf-8") as stream:
                render(payload, stream, show_all)
        except OSError as exc:
            click.echo(f"bncheck: error: cannot write {output} ({exc.strerror})", err=True)
            sys.exit(2)
        return
    try:
        render(payload, sys.stdout, show_all)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE instead of stdout.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), help="Exit 1 on findings at or above this [default: error].")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (bad input still exits 2).")
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE", help="Set a rule threshold.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching paths in directory scans (repeatable).")
@click.option("--config", type=click.Path(dir_okay=False), help="Read settings from FILE instead of pyproject.toml.")
@click.option("--baseline", type=click.Path(dir_okay=False), help="A previous json report: its findings do not fail.")
@click.option("--all", "show_all", is_flag=True, help="List every layer and finding, even in large models.")
@click.option("--meta", type=click.Path(dir_okay=False), help="Training graph (.meta) [default: beside PATH].")
@click.option("--no-graph", is_flag=True, help="Ignore the training graph (.meta, SavedModel): value rules only.")
def inspect(
    paths: tuple[str, ...],
    fmt: str,
    output: str | None,
    fail_on: str | None,
    exit_zero: bool,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    thresholds: tuple[str, ...],
    exclude: tuple[str, ...],
    config: str | None,
    baseline: str | None,
    show_all: bool,
    meta: str | None,
    no_graph: bool,
) -> None:
    """Inspect the BN layers of each model PATH (checkpoint prefix, file or directory).

    A directory is scanned for every model in it. Settings come from [tool.bncheck]
    in the nearest pyproject.toml (or --config); the command line wins.

    Exit status: 0 no findings at or above --fail-on, 1 such findings, 2 bad input.
    """
    from pathlib import Path

    from .analysis import analyse
    from .baseline import apply_baseline, load_baseline
    from .errors import BncheckError
    from .model import Report, exit_code
    from .readers import open_with_graph
    from .readers.discover import model_paths
    from .render import renderer

    if meta and (len(paths) > 1 or no_graph):
        click.echo("bncheck: error: --meta names the graph of one PATH and cannot go with --no-graph", err=True)
        sys.exit(2)
    try:
        settings = _settings(config, fail_on, select, ignore, thresholds, exclude)
        known = load_baseline(Path(baseline)) if baseline else set()
    except BncheckError as exc:
        click.echo(f"bncheck: error: {exc}", err=True)
        sys.exit(2)
    reports = []
    for path in paths:
        try:
            models = model_paths(path, settings.exclude)
        except BncheckError as exc:
            reports.append(Report(path, "unreadable", errors=[str(exc)]))
            continue
        if meta and len(models) > 1:
            click.echo(f"bncheck: error: --meta names the graph of one model, but {path} holds {len(models)}", err=True)
            sys.exit(2)
        for model in models:
            try:
                checkpoint = open_with_graph(model, meta, not no_graph)
                try:
                    reports.append(analyse(checkpoint, settings, keep_values=False))
                finally:
                    checkpoint.close()  # a scan of a thousand models must not hold a thousand open files
            except BncheckError as exc:
                reports.append(Report(model, "unreadable", errors=[str(exc)]))
    apply_baseline(reports, known)
    _emit(renderer(fmt), reports, output, show_all)
    for report in reports:
        for error in report.errors:
            click.echo(f"bncheck: error: {error}", err=True)
    findings = [f for r in reports for f in r.findings]
    status = exit_code(any(r.errors for r in reports), findings, settings.fail_on)
    sys.exit(0 if exit_zero and status == 1 else status)


@main.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True, help="Output format."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE instead of stdout.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), help="Exit 1 on findings at or above this [default: error].")
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--frozen", multiple=True, metavar="GLOB", help="Layers that must not change (fnmatch; repeatable).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance of 'changed' [default: 0].")
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance of 'changed' [default: 0].")
@click.option("--shift", type=click.FloatRange(min=0), help="BN204: relative change of a statistic [default: 1].")
@click.option("--config", type=click.Path(dir_okay=False), help="Read settings from FILE instead of pyproject.toml.")
@click.option("--all", "show_all", is_flag=True, help="List every layer and finding, even in large models.")
def diff(
    a: str,
    b: str,
    fmt: str,
    output: str | None,
    fail_on: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    frozen: tuple[str, ...],
    rtol: float | None,
    atol: float | None,
    shift: float | None,
    config: str | None,
    show_all: bool,
) -> None:
    """What changed in the BN state from model A to model B (any two inputs bncheck reads).

    Layers are paired by name; an element changed when |b - a| > atol + rtol * |a|.

    Exit status: 0 no findings at or above --fail-on, 1 such findings, 2 bad input.
    """
    from .comparison import compare
    from .errors import BncheckError
    from .model import exit_code
    from .readers import open_model
    from .render import diff_renderer

    options = {"change_rtol": rtol, "change_atol": atol, "stats_shift": shift}
    thresholds = tuple(f"{name}={value!r}" for name, value in options.items() if value is not None)
    try:
        settings = _settings(config, fail_on, select, ignore, thresholds, ())
        checkpoints = open_model(a), open_model(b)
        try:
            report = compare(*checkpoints, settings, frozen)
        finally:
            for checkpoint in checkpoints:
                checkpoint.close()
    except BncheckError as exc:
        click.echo(f"bncheck: error: {exc}", err=True)
        sys.exit(2)
    _emit(diff_renderer(fmt), report, output, show_all)
    for error in report.errors:
        click.echo(f"bncheck: error: {error}", err=True)
    sys.exit(exit_code(bool(report.errors), report.findings, settings.fail_on))


@main.command()
@click.argument("code", required=False)
def rules(code: str | None) -> None:
    """List the rule catalogue, or print the documentation of rule CODE."""
    from .rules import RULES

    if code is None:
        for rule in RULES.values():
            click.echo(f"{rule.code}  {rule.name:<28} {rule.severity.label:<8} {rule.summary}")
        return
    rule = RULES.get(code.upper())
    if rule is None:
        click.echo(f"bncheck: error: unknown rule {code!r}; 'bncheck rules' lists them", err=True)
        sys.exit(2)
    click.echo(f"{rule.code} {rule.name} ({rule.severity.label})\n\n{rule.doc}\n\nIn short: {rule.fix}")
