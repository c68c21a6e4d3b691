"""The training step count a model file records, found the same way in every format."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BncheckError
from ..facts import Step
from ..naming import STEP_NAMES


@dataclass(frozen=True)
class StepCounter:
    """A saved tensor that may count the training steps."""

    leaf: str  # the last part of its name: which counter it is (STEP_NAMES)
    source: str  # what the report calls it
    shape: tuple[int, ...]
    integer: bool
    read: Callable[[], Any]  # its value; raises BncheckError when it cannot be read


def find_step(counters: Iterable[StepCounter]) -> tuple[Step | None, tuple[str, ...]]:
    """The count of the most telling integer scalar among ``counters`` (in STEP_NAMES order), and the error
    that finding or reading it gave, if any (the rest of the file may still be read)."""
    by_leaf: dict[str, StepCounter] = {}
    try:
        for counter in counters:
            if counter.leaf in STEP_NAMES and counter.shape == () and counter.integer:
                by_leaf.setdefault(counter.leaf, counter)
        for leaf in STEP_NAMES:
            if leaf in by_leaf:
                return Step(int(by_leaf[leaf].read()), by_leaf[leaf].source), ()
    except BncheckError as exc:
        return None, (str(exc),)
    return None, ()
