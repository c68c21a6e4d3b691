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
    from .model import Report


def inspect(path: str, settings: Settings | None = None) -> Report:
    """Read the model at ``path`` and run the rules; raises BncheckError on bad input."""
    from .analysis import analyse
    from .config import Settings
    from .readers import open_model

    return analyse(open_model(path), settings or Settings())
