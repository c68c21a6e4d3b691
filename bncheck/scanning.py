"""A report for every model a scan found: one after another, or in worker processes (``--jobs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings
    from .deltas import DiffReport
    from .readers.discover import Found
    from .report import Report


def found_at(
    path: str, settings: Settings, exclude: Iterable[str] = (), meta: str | None = None
) -> list[Found] | Report:
    """The models at ``path`` (a directory or store prefix scanned, the settings' excludes skipped), or the report
    of why there are none. Raises BncheckError only when ``meta`` is given for a path holding several models."""
    from .errors import BncheckError
    from .readers.discover import find_models
    from .report import Report
    from .stores import configure, redacted

    configure(settings.remote)
    try:
        models = find_models(path, settings.exclude + tuple(exclude))
    except BncheckError as exc:
        return Report(redacted(path), "unreadable", errors=[str(exc)])
    if meta and len(models) > 1:
        raise BncheckError(f"--meta names the graph of one model, but {redacted(path)} holds {len(models)}")
    return models


def report_of(model: Found, settings: Settings, meta: str | None = None, graph: bool = True) -> Report:
    """The report of one model; one that cannot be read is a report with ``errors``. Its files are closed
    before it returns (a scan of a thousand models holds no thousand open files), and it pickles."""
    from .analysis import analyse
    from .errors import BncheckError
    from .readers import open_found
    from .report import Report
    from .stores import configure

    configure(settings.remote)  # in a worker process too
    try:
        read = open_found(model, meta, graph)
        try:
            return analyse(read, settings, keep_values=False)
        finally:
            read.close()
    except BncheckError as exc:
        return Report(model.path, "unreadable", errors=[str(exc)])


def reports_of(
    models: list[Found],
    settings: Settings,
    meta: str | None = None,
    graph: bool = True,
    jobs: int = 1,
    done: Callable[[Report], None] | None = None,
    supervised: bool = True,
) -> list[Report]:
    """:func:`report_of` each model, in order: in ``jobs`` worker processes under ``settings.limits``
    (:mod:`.supervisor`; a model past its deadline or memory cap, or whose reader crashed, is a report with that
    error) when ``supervised`` (and its timeout is not 0) or ``jobs`` > 1; else in this process. ``done`` hears of
    each report."""
    reports = []
    for report in _each(
        models, partial(report_of, settings=settings, meta=meta, graph=graph), jobs, settings, supervised
    ):
        reports.append(report)
        if done is not None:
            done(report)
    return reports


def _each(
    models: list[Found], work: Callable[[Found], Report], jobs: int, settings: Settings, in_workers: bool
) -> Iterator[Report]:
    from .report import Report
    from .supervisor import Failed, supervised

    limits = settings.limits
    if not (in_workers and limits.timeout) and jobs <= 1:
        yield from map(work, models)
        return
    for model, outcome in zip(models, supervised(models, work, lambda model: model.path, jobs, limits), strict=True):
        yield Report(model.path, "unreadable", errors=[outcome.message]) if isinstance(outcome, Failed) else outcome


def diff_of(a: str, b: str, settings: Settings, frozen: tuple[str, ...] = ()) -> DiffReport:
    """The diff report of the models at ``a`` and ``b``, in a worker process under ``settings.limits`` (twice
    the deadline of one model) unless its timeout is 0. Raises BncheckError on bad input, or when the worker
    ran past its deadline or memory cap, or crashed."""
    from dataclasses import replace

    from .errors import InputError
    from .stores import redacted
    from .supervisor import Failed, supervised

    limits = settings.limits
    if limits.timeout:
        work, shown = partial(_diff, settings=settings, frozen=frozen), f"{redacted(a)} and {redacted(b)}"
        (outcome,) = supervised([(a, b)], work, lambda pair: shown, 1, replace(limits, timeout=2 * limits.timeout))
    else:
        outcome = _diff((a, b), settings, frozen)
    if isinstance(outcome, Failed):
        raise InputError(outcome.message)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _diff(paths: tuple[str, str], settings: Settings, frozen: tuple[str, ...]) -> DiffReport | BaseException:
    """The diff report of two models (in a worker: bad input is returned, to be raised by the supervisor)."""
    from .comparison import compare
    from .errors import BncheckError
    from .readers import open_model
    from .stores import configure

    configure(settings.remote)
    opened = []
    try:
        for path in paths:
            opened.append(open_model(path))
        return compare(*opened, settings, frozen)
    except BncheckError as exc:
        return exc
    finally:
        for model in opened:
            model.close()
