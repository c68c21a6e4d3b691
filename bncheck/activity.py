"""What a supervised worker tells its supervisor while it reads a model: which library is at work (for the
message if it never finishes) and how long it waited for a store (which the deadline does not count: remote reads
have deadlines of their own). Outside a worker nobody listens, and telling costs a function call."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_listener: Callable[[str, Any], None] | None = None


def listen(listener: Callable[[str, Any], None] | None) -> None:
    """Hear every ``(kind, value)`` told from now on (None: stop)."""
    global _listener
    _listener = listener


def working_in(library: str) -> None:
    """From now on ``library`` ("the HDF5 library") does the work of this model."""
    if _listener is not None:
        _listener("library", library)


@contextmanager
def waiting() -> Iterator[None]:
    """A wait for the network: told when it starts, and its seconds when it ends."""
    if _listener is None:
        yield
        return
    _listener("wait", None)
    start = time.monotonic()
    try:
        yield
    finally:
        _listener("waited", time.monotonic() - start)
