"""bncheck: lint the BatchNormalization state of saved TensorFlow / Keras models.

>>> import bncheck
>>> report = bncheck.inspect("model.ckpt")
>>> [f.code for f in report.findings]
>>> reports = bncheck.scan("export/")  # every model in a directory, as `bncheck inspect export/`
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .config import Settings
    from .deltas import DiffReport
    from .report import Report


def inspect(path: str, settings: Settings | None = None, *, meta: str | None = None, graph: bool = True) -> Report:
    """Read the model at ``path`` (and its training graph: ``meta``, else the one beside it,
    unless ``graph`` is False) and run the rules; a directory must hold exactly one model
    (:func:`scan` reads them all). Raises BncheckError on bad input."""
    from .analysis import analyse
    from .config import Settings
    from .errors import BncheckError
    from .readers import open_found
    from .readers.discover import find_models, several_models
    from .stores import configure

    settings = settings or Settings()
    configure(settings.remote)
    models = find_models(path)
    if len(models) > 1:
        raise BncheckError(f"{several_models(path, models)}; bncheck.scan({path!r}) reports each")
    return analyse(open_found(models[0], meta, graph), settings)


def scan(
    path: str,
    settings: Settings | None = None,
    *,
    exclude: Iterable[str] = (),
    meta: str | None = None,
    graph: bool = True,
    jobs: int = 1,
) -> list[Report]:
    """What ``bncheck inspect PATH`` does: a report for every model at ``path`` (a directory, or a prefix of
    an object store, is scanned; ``exclude``: globs it skips, besides the settings' own), in ``jobs`` worker
    processes if more than one. A model that cannot be read is a report with ``errors``, not an exception;
    the reports keep summaries of the values, not the values. Raises BncheckError only when ``meta`` is
    given for a path holding several models."""
    from .config import Settings
    from .scanning import found_at, reports_of

    settings = settings or Settings()
    found = found_at(path, settings, exclude, meta)
    return reports_of(found, settings, meta, graph, jobs, supervised=False) if isinstance(found, list) else [found]


def diff(a: str, b: str, settings: Settings | None = None, *, frozen: str | Iterable[str] = ()) -> DiffReport:
    """Compare the BN state of the models at ``a`` and ``b`` (any formats bncheck reads) and run
    the diff rules; ``frozen``: a layer-name glob or several that must not change (BN202). Raises
    BncheckError on bad input."""
    from .comparison import compare
    from .config import Settings
    from .readers import open_model
    from .stores import configure

    globs = (frozen,) if isinstance(frozen, str) else tuple(frozen)
    settings = settings or Settings()
    configure(settings.remote)
    return compare(open_model(a), open_model(b), settings, globs)
