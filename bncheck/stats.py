"""Summaries of loaded values (:class:`Stats`), computed for many arrays at once and packed small
for keeping; digests that say whether two arrays are bit-identical.

One model can hold 80,000 small BN tensors: a few numpy calls per tensor would cost more
than reading them. The arrays are laid end to end in one float64 buffer and reduced per
segment (``ufunc.reduceat``), a handful of numpy calls for all of them.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterator, Mapping
from functools import lru_cache, partial
from typing import NamedTuple

import numpy as np


class Stats(NamedTuple):
    """A loaded variable in brief: what the renderers show and the rules test before looking closer."""

    size: int
    nonfinite: int  # elements NaN or +-Inf
    min: float | None  # min / max / mean over the finite elements; None when there are none
    max: float | None
    mean: float | None


_stats = partial(tuple.__new__, Stats)  # Stats from a tuple of its fields: half the cost of Stats(*fields)
_NOTHING = Stats(0, 0, None, None, None)  # of an empty array


def summarise(values: list[np.ndarray]) -> list[Stats]:
    """The Stats of each array (numeric), in order: min / max / mean over its finite elements."""
    sizes = [value.size for value in values]
    filled = [value for value in values if value.size]  # reduceat needs no empty segment
    flat = np.concatenate(filled, axis=None, dtype=np.float64) if filled else np.empty(0)  # axis None: flattened
    return summarise_segments(flat, sizes)


def summarise_segments(flat: np.ndarray, sizes: list[int]) -> list[Stats]:
    """The Stats of each of the consecutive segments of ``flat`` (float64) that are ``sizes`` long, in order."""
    counts = [size for size in sizes if size]
    if not counts:
        return [_NOTHING] * len(sizes)
    starts = np.cumsum([0, *counts[:-1]])
    bad, lows, highs, sums = _reductions(flat, starts)
    if len(counts) == len(sizes) and not any(bad):  # the usual case: every segment filled and finite
        with np.errstate(over="ignore"):
            means = np.divide(sums, counts)
        if np.isfinite(means).all():
            return list(map(_stats, zip(counts, bad, lows, highs, means.tolist(), strict=True)))
    reduced = zip(starts.tolist(), counts, bad, lows, highs, sums, strict=True)
    result = []
    for size in sizes:
        if not size:
            result.append(_NOTHING)
            continue
        start, size, nonfinite, low, high, total = next(reduced)
        if nonfinite == size:
            result.append(_stats((size, nonfinite, None, None, None)))
        else:
            mean = total / (size - nonfinite)
            if math.isinf(mean):  # the sum overflowed (values near the float64 limit)
                mean = _scaled_mean(flat[start : start + size], max(-low, high))
            result.append(_stats((size, nonfinite, low, high, mean)))
    return result


def largest_magnitude(stats: Stats, around: float = 0.0) -> float:
    """max |x - around| over the finite elements (0 if none)."""
    if stats.min is None or stats.max is None:
        return 0.0
    return max(abs(stats.min - around), abs(stats.max - around))


def _scaled_mean(value: np.ndarray, scale: float) -> float:
    """The mean of the finite elements, summed as fractions of ``scale`` (their largest magnitude): no overflow."""
    flat = value.astype(np.float64).ravel()
    finite = flat[np.isfinite(flat)] / scale
    return float(np.add.reduce(finite) / finite.size) * scale


@np.errstate(over="ignore")  # a sum that overflows is redone by summarise
def _reductions(flat: np.ndarray, starts: np.ndarray) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per segment: non-finite count, min, max (NaN when none is finite) and sum of the finite elements."""
    finite = np.isfinite(flat)
    if finite.all():
        bad = [0] * len(starts)
        sums = np.add.reduceat(flat, starts).tolist()
    else:
        bad = np.add.reduceat(~finite, starts).tolist()
        sums = np.add.reduceat(np.where(finite, flat, 0.0), starts).tolist()
        flat = np.where(finite, flat, np.nan)  # fmin/fmax skip NaN: min/max of the finite elements
    return bad, np.fmin.reduceat(flat, starts).tolist(), np.fmax.reduceat(flat, starts).tolist(), sums


def digest(values: list[np.ndarray]) -> bytes:
    """A digest of the arrays, equal for two lists only when their dtypes, shapes and bytes are."""
    # SHA-256: in hardware on most CPUs, faster than blake2b here
    digest = hashlib.sha256(b"".join([_header(value.dtype, value.shape) for value in values]))
    for value in values:
        digest.update(np.ascontiguousarray(value))
    return digest.digest()[:16]


@lru_cache(maxsize=1024)  # a model has a few dozen dtypes and shapes in its layers
def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """What, besides its bytes, makes an array equal to another; it also says where the bytes end."""
    return f"{dtype.str}{shape}".encode()


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
        return _stats(  # NaN stands for None (x != x only for NaN)
            (
                int(size),
                int(nonfinite),
                None if low != low else low,
                None if high != high else high,
                None if mean != mean else mean,
            )
        )

    def get(self, role: str, default: Stats | None = None) -> Stats | None:
        """As ``Mapping.get``, one call less (the renderers ask it for every variable)."""
        return self[role] if role in self._roles else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._roles)

    def __len__(self) -> int:
        return len(self._roles)


_FIELDS = len(Stats._fields)
_ROLE_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
