"""Limits on the tensor geometry a file may claim (dimensions, sizes, strides, offsets), so that a damaged or
crafted shape is refused with a reason instead of reaching numpy, which accepts at most 64 dimensions and
sizes whose bytes fit a signed 64-bit integer."""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_DIMS = 64  # numpy's own limit (NPY_MAXDIMS)
MAX_EXTENT = 1 << 48  # sizes, strides, offsets and element counts stay below this (256 T: no real tensor is near)


def geometry_problem(shape: Sequence[int], strides: Sequence[int] = (), offset: int = 0) -> str | None:
    """Why ``shape`` (with ``strides`` and ``offset``, in elements) cannot be a tensor's, or None."""
    if len(shape) > MAX_DIMS:
        return f"{len(shape)} dimensions (at most {MAX_DIMS})"
    if any(n >= MAX_EXTENT for n in (*shape, *strides, offset)):
        return "a size, stride or offset past 2^48"
    if math.prod(n for n in shape if n) >= MAX_EXTENT:
        return "more than 2^48 elements"
    return None
