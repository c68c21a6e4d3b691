"""The command line: options -> Settings, run the core, pick a renderer, exit code.

Heavy modules (numpy, rich, protobuf) are imported inside the commands so that
``bncheck --help`` starts instantly; TensorFlow is never imported.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import click

from . import __version__
from .config import FAIL_ON
from .render import DIFF_FORMATS, FORMATS

if TYPE_CHECKING:
    from .config import Settings


def _split(values: tuple[str, ...]) -> list[str]:
    """Accept repeated and comma-separated values ('BN00', 'BN002,BN006')."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _discard(stream: IO[str]) -> None:
    """Send what ``stream`` still gets to /dev/null: its reader has gone (``| head``)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _quietly(write: Callable[[], object], stream: IO[str] | None = None) -> None:
    """Run ``write`` (to ``stream``, default stderr); a closed pipe there must not change the exit status."""
    try:
        write()
    except BrokenPipeError:
        _discard(stream or sys.stderr)


def _say(message: str) -> None:
    _quietly(lambda: click.echo(message, err=True))


class _Main(click.Group):
    """The command group; its exit status survives a closed stdout or stderr (``bncheck ... 2>&1 | head -1``)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)  # click's own messages come to us
        except click.ClickException as exc:
            _quietly(exc.show)
            status = exc.exit_code
        except click.Abort:
            _say("Aborted!")
            status = 1
        except SystemExit as exc:
            status = exc.code
        for stream in (sys.stdout, sys.stderr):
            _quietly(stream.flush, stream)
        sys.exit(status)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bncheck")
def main() -> None:
    """Lint the BatchNormalization state of saved TensorFlow / Keras models."""
    # A short-lived process that builds one object per saved variable (80,000 in large checkpoints) and few
    # cycles: collecting every 700 allocations cost 0.3 s of 2.5 s there; every 100,000 is plenty.
    gc.set_threshold(100_000, 50, 100)


def _settings(
    command: str,
    config: str | None,
    fail_on: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    thresholds: tuple[str, ...],
    exclude: tuple[str, ...],
    graph: bool = True,
    timeout: float | None = None,
) -> Settings:
    """[tool.bncheck] of --config or the nearest pyproject.toml, overlaid by the command line; a selection
    that leaves ``command`` ("inspect" or "diff") no rule to run is an error."""
    from dataclasses import replace
    from pathlib import Path

    from .config import check_codes, find_pyproject, load_file, parse_fail_on, settings_from
    from .errors import ConfigError

    source = Path(config) if config else find_pyproject(Path.cwd())
    table = load_file(source, required=bool(config)) if source else {}
    settings = settings_from(table, str(source))
    pairs = {}
    for item in thresholds:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--threshold")
        pairs[key.strip()] = value.strip()
    settings = replace(
        settings,
        fail_on=parse_fail_on(fail_on, "--fail-on") if fail_on else settings.fail_on,
        select=check_codes(_split(select), "--select") if select else settings.select,
        ignore=check_codes(_split(ignore), "--ignore") if ignore else settings.ignore,
        thresholds=settings.thresholds.updated(pairs, "--threshold"),
        exclude=settings.exclude + tuple(exclude),
        limits=settings.limits if timeout is None else replace(settings.limits, timeout=timeout),
    )
    from .rules import Kind

    if not settings.runnable(Kind(command), graph):
        chosen = " and ".join(
            f"--{name} {','.join(codes)}" if given else f"{name} = {list(codes)} in {source}"
            for name, codes, given in (("select", settings.select, select), ("ignore", settings.ignore, ignore))
            if codes
        )
        rules = "BN0xx, and BN1xx with a graph" if command == "inspect" else "BN2xx"
        raise ConfigError(
            f"{chosen}{' with --no-graph' if not graph else ''}: no rule of bncheck {command} left to run "
            f"(its rules: {rules})"
        )
    return settings


def _emit(render: Callable[[Any, IO[str], bool], None], payload: Any, output: str | None, show_all: bool) -> None:
    """Render to ``output`` or stdout; a reader that leaves the pipe early does not change the exit status."""
    if output:
        try:
            _write_whole(output, lambda stream: render(payload, stream, show_all))
        except OSError as exc:
            _say(f"bncheck: error: cannot write {output} ({exc.strerror})")
            sys.exit(2)
        return

    def to_stdout() -> None:
        render(payload, sys.stdout, show_all)
        sys.stdout.flush()

    _quietly(to_stdout, sys.stdout)


def _write_whole(output: str, write: Callable[[IO[str]], None]) -> None:
    """``write`` into a temporary file beside ``output``, renamed to it once complete: a crash or an interrupt
    never leaves half a report (a half SARIF a CI uploader would take as valid). A FIFO or device is written
    directly; an existing file keeps its permissions."""
    import stat
    import tempfile

    try:
        existing = os.stat(output)
    except OSError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(output, "w", encoding="utf-8") as stream:
            write(stream)
        return
    target = os.path.realpath(output)  # through a link, as writing to it would
    directory, name = os.path.split(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            write(stream)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, stat.S_IMODE(existing.st_mode) if existing else 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _refuse_to_overwrite(output: str, inputs: list[str], exclude: tuple[str, ...] = ()) -> None:
    """``-o`` must not name a file any input model is read from (by identity: links and other spellings too)."""
    from .errors import ConfigError
    from .readers.discover import input_files

    try:
        written = os.stat(output)
    except OSError:
        return  # not there yet, so no input; or not writable, which writing says
    for path in inputs:
        for file in input_files(path, exclude):
            try:
                same = os.path.samestat(written, os.stat(file))
            except OSError:
                continue
            if same:
                raise ConfigError(f"-o {output} is one of the inputs ({file}); write the report elsewhere")


def _report_shows_errors(fmt: str, output: str | None) -> bool:
    """Whether the errors are already on the screen: a table on stdout, and stderr the same terminal."""
    if fmt != "table" or output or not (sys.stdout.isatty() and sys.stderr.isatty()):
        return False
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError):
        return False


def _echo_errors(errors: list[str], fmt: str, output: str | None) -> None:
    """The report's errors on stderr too (CI logs keep them), unless the table shows them on the same terminal."""
    if not _report_shows_errors(fmt, output):
        for error in errors:
            _say(f"bncheck: error: {error}")


TIMEOUT_OPTION = click.option(
    "--timeout",
    type=click.FloatRange(min=0, max=86400),
    metavar="SECONDS",
    help="Reading one model may take this long (a damaged file can make a library loop); 0: no deadline, read in "
    "this process [default: 10, or timeout in [tool.bncheck]].",
)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE instead of stdout.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), help="Exit 1 on findings at or above this [default: error].")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (bad input still exits 2).")
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE", help="Set a rule threshold.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching paths in directory scans (repeatable).")
@click.option("--config", type=click.Path(dir_okay=False), help="Read settings from FILE instead of pyproject.toml.")
@click.option("--baseline", type=click.Path(dir_okay=False), help="A previous json report: its findings do not fail.")
@click.option("--all", "show_all", is_flag=True, help="List every layer and finding, even in large models.")
@click.option("--meta", type=click.Path(dir_okay=False), help="Training graph (.meta) [default: beside PATH].")
@click.option(
    "--no-graph",
    is_flag=True,
    help="Ignore the graph (.meta; a SavedModel's training graph and signatures): value rules only, "
    "so SavedModel signatures are not checked for BN013.",
)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Models read at once (processes)."
)
@TIMEOUT_OPTION
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
    jobs: int,
    timeout: float | None,
) -> None:
    """Inspect the BN layers of each model PATH (checkpoint prefix, file or directory; or a URL: s3://,
    gs://, az://, http(s)://, hf://, with bncheck[remote]).

    A directory (or a store's prefix) is scanned for every model in it. Settings come from [tool.bncheck]
    in the nearest pyproject.toml (or --config); the command line wins.

    Exit status: 0 no findings at or above --fail-on, 1 such findings, 2 bad input.
    """
    from dataclasses import replace
    from pathlib import Path

    from .baseline import apply_baseline, load_baseline
    from .errors import BncheckError
    from .outcome import exit_status
    from .render import renderer
    from .scanning import found_at, reports_of
    from .stores import scheme_of

    if meta and (len(paths) > 1 or no_graph):
        _say("bncheck: error: --meta names the graph of one PATH and cannot go with --no-graph")
        sys.exit(2)
    try:
        settings = _settings("inspect", config, fail_on, select, ignore, thresholds, exclude, not no_graph, timeout)
        settings = replace(settings, scales=fmt == "html")  # what only the HTML report draws
        known = load_baseline(Path(baseline)) if baseline else set()
        if output:
            _refuse_to_overwrite(output, [*paths, *([meta] if meta else [])], settings.exclude)
        found = [found_at(path, settings, meta=meta) for path in paths]
        models = [model for each in found if isinstance(each, list) for model in each]
        with _progress(len(models), remote=any(scheme_of(path) for path in paths)) as done:
            read = iter(reports_of(models, settings, meta, not no_graph, jobs, done))
        reports = [
            report for each in found for report in ([next(read) for _ in each] if isinstance(each, list) else [each])
        ]
    except BncheckError as exc:
        _say(f"bncheck: error: {exc}")
        sys.exit(2)
    reports = apply_baseline(reports, known)
    _emit(renderer(fmt), reports, output, show_all)
    _echo_errors([error for report in reports for error in report.errors], fmt, output)
    findings = [f for r in reports for f in r.findings]
    status = exit_status(any(r.errors for r in reports), findings, settings.fail_on)
    sys.exit(0 if exit_zero and status == 1 else status)


PROGRESS_MODELS = 20  # a scan of this many models shows its progress on a terminal (of remote ones: any)


@contextmanager
def _progress(total: int, remote: bool = False) -> Iterator[Callable[[Any], None] | None]:
    """A progress bar on stderr while ``total`` models are read: only on a terminal, not in CI, not for a few
    local ones."""
    if total < (1 if remote else PROGRESS_MODELS) or not sys.stderr.isatty() or os.environ.get("CI"):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"inspecting {total} model{'s' * (total != 1)}", total=total)
        yield lambda report: bar.advance(task)


_TOLERANCE = click.FloatRange(min=0)


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


@main.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--format", "fmt", type=click.Choice(DIFF_FORMATS), default="table", show_default=True, help="Output format."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE instead of stdout.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), help="Exit 1 on findings at or above this [default: error].")
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (repeatable, comma-separated).")
@click.option("--frozen", multiple=True, metavar="GLOB", help="Layers that must not change (fnmatch; repeatable).")
@click.option("--rtol", type=_TOLERANCE, callback=_finite, help="Relative tolerance of 'changed' [default: 0].")
@click.option("--atol", type=_TOLERANCE, callback=_finite, help="Absolute tolerance of 'changed' [default: 0].")
@click.option("--shift", type=_TOLERANCE, callback=_finite, help="BN204: relative change of a statistic [default: 1].")
@click.option("--config", type=click.Path(dir_okay=False), help="Read settings from FILE instead of pyproject.toml.")
@click.option("--all", "show_all", is_flag=True, help="List every layer and finding, even in large models.")
@TIMEOUT_OPTION
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
    timeout: float | None,
) -> None:
    """What changed in the BN state from model A to model B (any two inputs bncheck reads).

    Layers are paired by name; an element changed when |b - a| > atol + rtol * |a|.

    Exit status: 0 no findings at or above --fail-on, 1 such findings, 2 bad input.
    """
    from .errors import BncheckError
    from .outcome import exit_status
    from .render import diff_renderer
    from .scanning import diff_of

    options = {"change_rtol": rtol, "change_atol": atol, "stats_shift": shift}
    thresholds = tuple(f"{name}={value!r}" for name, value in options.items() if value is not None)
    try:
        settings = _settings("diff", config, fail_on, select, ignore, thresholds, (), timeout=timeout)
        if output:
            _refuse_to_overwrite(output, [a, b])
        report = diff_of(a, b, settings, frozen)
    except BncheckError as exc:
        _say(f"bncheck: error: {exc}")
        sys.exit(2)
    _emit(diff_renderer(fmt), report, output, show_all)
    _echo_errors(report.errors, fmt, output)
    sys.exit(exit_status(bool(report.errors), report.findings, settings.fail_on))


@main.command()
@click.argument("code", required=False)
def rules(code: str | None) -> None:
    """List the rule catalogue, or print the documentation of rule CODE."""
    from .rules import RULES

    if code is None:
        text = "\n".join(f"{r.code}  {r.name:<28} {r.severity.label:<8} {r.summary}" for r in RULES.values())
    elif code.upper() in RULES:
        rule = RULES[code.upper()]
        text = f"{rule.code} {rule.name} ({rule.severity.label})\n\n{rule.doc}\n\n{rule.fix_text}"
    else:
        _say(f"bncheck: error: unknown rule {code!r}; 'bncheck rules' lists them")
        sys.exit(2)
    _quietly(lambda: click.echo(text), sys.stdout)
