"""The command line: options -> Settings, run the core, pick a renderer, exit code.

Heavy modules (numpy, rich, protobuf) are imported inside the commands so that
``bncheck --help`` starts instantly; TensorFlow is never imported.
"""

from __future__ import annotations

import sys

import click

from . import __version__

SEVERITIES = ("error", "warning", "info", "never")


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    """Accept repeated and comma-separated codes or prefixes ('BN00', 'BN002,BN006')."""
    from .rules import RULES

    codes = tuple(c.strip().upper() for v in values for c in v.split(",") if c.strip())
    for code in codes:
        if not any(known.startswith(code) for known in RULES):
            raise click.BadParameter(f"no rule code starts with {code!r} (see 'bncheck rules')")
    return codes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bncheck")
def main() -> None:
    """Lint the BatchNormalization state of saved TensorFlow / Keras models."""


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report to FILE instead of stdout."
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="error",
    show_default=True,
    help="Exit 1 on findings at or above this severity.",
)
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--all", "show_all", is_flag=True, help="List every layer and finding, even in large models.")
def inspect(
    paths: tuple[str, ...],
    fmt: str,
    output: str | None,
    fail_on: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    show_all: bool,
) -> None:
    """Inspect the BN layers of each model PATH (checkpoint prefix, file or directory).

    Exit status: 0 no findings at or above --fail-on, 1 such findings, 2 bad input.
    """
    from .analysis import analyse
    from .config import Settings
    from .errors import BncheckError
    from .model import Report, Severity, exit_code
    from .readers import open_model
    from .render import renderer

    settings = Settings(
        fail_on=None if fail_on == "never" else Severity.parse(fail_on),
        select=_codes(select),
        ignore=_codes(ignore),
    )
    reports = []
    for path in paths:
        try:
            reports.append(analyse(open_model(path), settings))
        except BncheckError as exc:
            click.echo(f"bncheck: error: {exc}", err=True)
            reports.append(Report(path, "unreadable", errors=[str(exc)]))
    render = renderer(fmt)
    if output:
        with open(output, "w", encoding="utf-8") as stream:
            render(reports, stream, show_all)
    else:
        render(reports, sys.stdout, show_all)
    for report in reports:
        for error in report.errors[1 if report.format == "unreadable" else 0 :]:
            click.echo(f"bncheck: error: {error}", err=True)
    sys.exit(exit_code(reports, settings.fail_on))


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
