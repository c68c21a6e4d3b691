"""Numbers read from graph attributes and constants (momentum, epsilon): float32 values,
shown as written, and only when finite (a damaged file's NaN or Inf leaves the default to apply)."""

from __future__ import annotations

import math


def attribute_number(value: float | None, digits: int = 7) -> float | None:
    """``value`` rounded to ``digits`` significant digits (what a float32 carries); None if absent or not finite."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")
