"""bncheck: lint the BatchNormalization state of saved TensorFlow / Keras models.

>>> import bncheck
>>> report = bncheck.inspect("model.ckpt")
>>> [f.code for f in report.findings]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config import Settings
    from .model import DiffReport, Report


def inspect(path: str, settings: Settings | None = None, *, meta: str | None = None, graph: bool = True) -> Report:
    """Read the model at ``path`` (and its training graph: ``meta``, else the one beside it,
    unless ``graph`` is False) and run the rules; raises BncheckError on bad input."""
    from .analysis import analyse
    from .config import Settings
    from .readers import open_with_graph

    return analyse(open_with_graph(path, meta, graph), settings or Settings())


def diff(a: str, b: str, settings: Settings | None = None, *, frozen: tuple[str, ...] = ()) -> DiffReport:
    """Compare the BN state of the models at ``a`` and ``b`` (any formats bncheck reads) and run
    the diff rules; ``frozen``: layer-name globs that must not change (BN202). Raises
    BncheckError on bad input."""
    from .comparison import compare
    from .config import Settings
    from .readers import open_model

    return compare(open_model(a), open_model(b), settings or Settings(), tuple(frozen))
