"""Summaries of loaded values (:class:`~bncheck.model.Stats`), computed for many arrays at once
and packed small for keeping.

One model can hold 80,000 small BN tensors: a few numpy calls per tensor would cost more
than reading them. The arrays are laid end to end in one float64 buffer and reduced per
segment (``ufunc.reduceat``), a handful of numpy calls for all of them.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterator, Mapping

import numpy as np

from .model import Stats


def summarise(values: list[np.ndarray]) -> list[Stats]:
    """The Stats of each array (numeric), in order: min / max / mean over its finite elements."""
    filled = [value for value in values if value.size]  # reduceat cannot express an empty segment
    sizes = [value.size for value in filled]
    bad, lows, highs, sums = _reductions(filled, sizes) if filled else ([], [], [], [])
    result, i = [], 0
    for value in values:
        if not value.size:
            result.append(Stats(0, 0, None, None, None))
            continue
        size, nonfinite = sizes[i], bad[i]
        if nonfinite == size:
            result.append(Stats(size, nonfinite, None, None, None))
        else:
            mean = sums[i] / (size - nonfinite)
            if math.isinf(mean):  # the sum overflowed (values near the float64 limit)
                mean = _scaled_mean(value, max(-lows[i], highs[i]))
            result.append(Stats(size, nonfinite, lows[i], highs[i], mean))
        i += 1
    return result


def _scaled_mean(value: np.ndarray, scale: float) -> float:
    """The mean of the finite elements, summed as fractions of ``scale`` (their largest magnitude): no overflow."""
    flat = value.astype(np.float64).ravel()
    finite = flat[np.isfinite(flat)] / scale
    return float(np.add.reduce(finite) / finite.size) * scale


@np.errstate(over="ignore")  # a sum that overflows is redone by summarise
def _reductions(filled: list[np.ndarray], sizes: list[int]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per array: non-finite count, min, max (NaN when none is finite) and sum of the finite elements."""
    flat = np.concatenate([value.ravel() for value in filled], dtype=np.float64)
    starts = np.cumsum([0, *sizes[:-1]])
    finite = np.isfinite(flat)
    if finite.all():
        bad = [0] * len(filled)
        sums = np.add.reduceat(flat, starts).tolist()
    else:
        bad = np.add.reduceat(~finite, starts).tolist()
        sums = np.add.reduceat(np.where(finite, flat, 0.0), starts).tolist()
        flat = np.where(finite, flat, np.nan)  # fmin/fmax skip NaN: min/max of the finite elements
    return bad, np.fmin.reduceat(flat, starts).tolist(), np.fmax.reduceat(flat, starts).tolist(), sums


def fingerprint(values: list[np.ndarray]) -> bytes:
    """A digest of the arrays, equal for two lists only when their dtypes, shapes and bytes are."""
    digest = hashlib.blake2b(digest_size=16)
    for value in values:
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value))
    return digest.digest()


class PackedStats(Mapping[str, Stats]):
    """One layer's Stats in one array of floats: about a third of the memory of a dict of Stats, for
    keeping the summaries of many thousands of layers once their values are dropped."""

    __slots__ = ("_numbers", "_roles")

    def __init__(self, stats: Mapping[str, Stats]) -> None:
        roles = tuple(stats)
        self._roles = _ROLE_TUPLES.setdefault(roles, roles)  # most layers have the same roles: one tuple
        self._numbers = array("d", [math.nan if x is None else x for s in stats.values() for x in s])

    def __getitem__(self, role: str) -> Stats:
        try:
            i = self._roles.index(role) * _FIELDS
        except ValueError:
            raise KeyError(role) from None
        size, nonfinite, low, high, mean = self._numbers[i : i + _FIELDS]
        return Stats(  # NaN stands for None (x != x only for NaN)
            int(size),
            int(nonfinite),
            None if low != low else low,
            None if high != high else high,
            None if mean != mean else mean,
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._roles)

    def __len__(self) -> int:
        return len(self._roles)


_FIELDS = len(Stats._fields)
_ROLE_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
