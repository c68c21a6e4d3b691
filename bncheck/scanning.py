"""A report for every model a scan found: one after another, or in worker processes (``--jobs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings
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
) -> list[Report]:
    """:func:`report_of` each model, in order; with ``jobs`` > 1 in that many worker processes (started fresh:
    a forked copy of a process with a store's client threads could hang). ``done`` hears of each report."""
    reports = []
    for report in _each(models, partial(report_of, settings=settings, meta=meta, graph=graph), jobs):
        reports.append(report)
        if done is not None:
            done(report)
    return reports


def _each(models: list[Found], work: Callable[[Found], Report], jobs: int) -> Iterator[Report]:
    if jobs <= 1 or len(models) <= 1:
        yield from map(work, models)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(jobs, len(models))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(work, models, chunksize=max(1, len(models) // (workers * 8)))
