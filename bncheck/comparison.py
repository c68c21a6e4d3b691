"""Compare the BN state of two model files -> :class:`DiffReport`.

Layers are paired by name. For every variable of a pair the change from A to B is
measured in float64: *identical* means bit-identical float64 values; otherwise the
variable changed *within* tolerance when every element has |b - a| <= atol + rtol * |a|
(``change_atol``/``change_rtol``, both 0 by default), else it *changed*. Then the diff
rules (``Kind.DIFF``) judge the pairs.

Values stream as in inspect: a chunk of A's layers and their namesakes in B are loaded and measured before
the next, so memory does not grow with the values. The report keeps a Delta per variable and each side's layers
as read (names, variables, hints), neither values nor Stats: ``bncheck inspect`` summarises one model.
"""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase
from functools import lru_cache

import numpy as np

from .analysis import chunks, load_values, read_layers
from .config import Settings
from .deltas import Delta, DiffReport, LayerPair
from .facts import ModelFile
from .grouping import natural_key
from .layers import ROLES, BNLayer
from .report import Report
from .rules import DiffContext, DiffRule, Kind, of_kind

_FLOAT_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


def compare(
    a: ModelFile,
    b: ModelFile,
    settings: Settings,
    must_not_change: tuple[str, ...] = (),
    between: str = "between A and B",
    declared: str = "--frozen",
) -> DiffReport:
    """Pair the BN layers of ``a`` and ``b`` by name, measure their changes, run the diff rules;
    ``must_not_change``: layer-name globs the user declared frozen (``declared``: how, in findings; ``between``:
    how findings name the span from ``a`` to ``b``)."""
    side_a, side_b, pairs = _paired(a, b, settings.thresholds.change_rtol, settings.thresholds.change_atol)
    in_a, in_b = {layer.name for layer in side_a.layers}, {layer.name for layer in side_b.layers}
    only_a = [layer.name for layer in side_a.layers if layer.name not in in_b]
    only_b = [layer.name for layer in side_b.layers if layer.name not in in_a]
    paired = DiffReport(side_a, side_b, pairs, only_a, only_b, declared_frozen=must_not_change)
    paired = replace(paired, notes=_notes(paired, must_not_change))
    context = DiffContext(must_not_change, settings.thresholds, b.framework, between, declared)
    paths = (a.path, a.main_file, b.path, b.main_file)
    found = [
        finding
        for rule in of_kind(Kind.DIFF)
        if isinstance(rule, DiffRule) and settings.wants(rule.code)
        for finding in rule.run(paired, context)
        if not settings.ignored_at(finding.code, paths, finding.layer)
    ]
    return replace(paired, findings=sorted(found, key=lambda f: (natural_key(f.layer or ""), f.code)))


def _paired(a: ModelFile, b: ModelFile, rtol: float, atol: float) -> tuple[Report, Report, list[LayerPair]]:
    """Each side's layers as read (no values, no Stats: a diff measures changes; inspect summarises a model) and
    the pairs, measured a chunk of A's layers and their namesakes in B at a time; a layer whose values cannot be
    read stays unreadable, and each side's errors come in the order of its layers."""
    side_a, side_b = read_layers(a, load=False), read_layers(b, load=False)
    named = ({layer.name: layer for layer in side_a.layers}, {layer.name: layer for layer in side_b.layers})
    failed: tuple[dict[str, BNLayer], dict[str, BNLayer]] = ({}, {})  # per side: name -> unreadable layer

    def load(model: ModelFile, layers: list[BNLayer], side: int) -> list[BNLayer]:
        loaded = layers if model.errors else load_values(layers, model.path)[0]
        failed[side].update((layer.name, layer) for layer in loaded if layer.unreadable)
        return loaded

    def bare(layer: BNLayer, side: int) -> BNLayer:  # the layer as read, or unreadable
        return failed[side].get(layer.name) or named[side][layer.name]

    pairs = []
    for chunk in chunks(side_a.layers):
        mates = {layer.name: layer for layer in load(b, [named[1][x.name] for x in chunk if x.name in named[1]], 1)}
        for layer in load(a, chunk, 0):
            if layer.name in mates:
                pair = pair_layers(layer, mates[layer.name], rtol, atol)
                pairs.append(replace(pair, a=bare(layer, 0), b=bare(layer, 1)))
    paired = {pair.name for pair in pairs}
    for chunk in chunks([layer for layer in side_b.layers if layer.name not in paired]):
        load(b, chunk, 1)  # read for its errors
    sides = []
    for side, (report, model) in enumerate(((side_a, a), (side_b, b))):
        layers = [failed[side].get(layer.name, layer) for layer in report.layers]
        errors = [layer.unreadable for layer in layers if layer.unreadable]
        sides.append(replace(report, layers=layers, errors=[*model.errors, *errors]))
    return sides[0], sides[1], pairs


def pair_layers(a: BNLayer, b: BNLayer, rtol: float = 0.0, atol: float = 0.0) -> LayerPair:
    """The deltas of every variable of two layers of the same name (ROLES first)."""
    roles = [r for r in ROLES if r in a.variables or r in b.variables]
    roles += [r for r in {**a.variables, **b.variables} if r not in ROLES]
    deltas = {role: _delta(a, b, role, rtol, atol) for role in roles}
    variance = deltas.get("moving_variance")
    if variance is not None and variance.status in ("changed", "within"):
        ratio, bessel = _variance_ratio(a.values["moving_variance"], b.values["moving_variance"])
        return LayerPair(a.name, a, b, deltas, ratio, bessel)
    return LayerPair(a.name, a, b, deltas)


def _delta(a: BNLayer, b: BNLayer, role: str, rtol: float, atol: float) -> Delta:
    va, vb = a.variables.get(role), b.variables.get(role)
    shape_a, shape_b = (va.shape if va else None), (vb.shape if vb else None)
    if va is None or vb is None:
        if role in (a if va is None else b).hints.unmapped:
            return Delta("not mapped", shape_a=shape_a, shape_b=shape_b)
        return Delta("added" if va is None else "removed", shape_a=shape_a, shape_b=shape_b)
    if shape_a != shape_b:
        return Delta("reshaped", shape_a=shape_a, shape_b=shape_b)
    if role not in a.values or role not in b.values:
        return Delta("not read", shape_a=shape_a, shape_b=shape_b)
    x = np.asarray(a.values[role], dtype=np.float64).ravel()
    y = np.asarray(b.values[role], dtype=np.float64).ravel()
    if np.array_equal(x.view(np.uint64), y.view(np.uint64)):
        return _identical(shape_a)
    with np.errstate(invalid="ignore", over="ignore"):
        change = np.abs(y - x)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        beyond = ~(same | (change <= atol + rtol * np.abs(x)))
    finite = np.isfinite(change)
    max_abs = float(change[finite].max()) if finite.any() else None
    scale = min(_max_abs(x), _max_abs(y))
    max_rel = max_abs / scale if max_abs is not None and scale > 0 else None
    nonfinite = int(np.count_nonzero(~finite & ~same))
    return Delta("changed" if beyond.any() else "within", max_abs, max_rel, shape_a, shape_b, nonfinite)


@lru_cache(maxsize=1024)  # one Delta per shape: a diff of two checkpoints of a frozen model makes 80,000 of them
def _identical(shape: tuple[int, ...]) -> Delta:
    return Delta("identical", 0.0, 0.0, shape, shape)


def _max_abs(x: np.ndarray) -> float:
    finite = np.abs(x[np.isfinite(x)])
    return float(finite.max()) if finite.size else 0.0


def _variance_ratio(a: np.ndarray, b: np.ndarray) -> tuple[float | None, int | None]:
    """(c, n): B = c * A in every channel; n when c is n/(n-1) or (n-1)/n (Bessel's correction)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if not x.size or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        return None, None
    ratio = y / x
    c = float(np.median(ratio))
    tol = 4 * max(_FLOAT_EPS.get(str(a.dtype), 2.0**-23), _FLOAT_EPS.get(str(b.dtype), 2.0**-23))
    if c == 1.0 or not np.all(np.abs(ratio - c) <= tol * c):
        return None, None
    big = max(c, 1 / c)
    n = round(big / (big - 1))
    return c, (n if n >= 2 and abs(n / (n - 1) - big) <= tol * big else None)


def _notes(report: DiffReport, must_not_change: tuple[str, ...]) -> list[str]:
    """What the pairing shows besides the changes: files that share no layer, globs that match none,
    variables one side cannot map, a variance rescaled by Bessel's correction."""
    notes = []
    if report.a.layers and report.b.layers and not report.pairs:
        notes.append(
            "no BN layer name is in both files: are they checkpoints of the same model? Layers are paired by name"
        )
    for glob in must_not_change:
        if not any(fnmatchcase(pair.name, glob) for pair in report.pairs):
            notes.append(f"--frozen {glob!r} matches no layer present in both files")
    for pair in report.pairs:
        unmapped = [role for role, delta in pair.deltas.items() if delta.status == "not mapped"]
        if unmapped:
            side = "A" if pair.a.variables.keys().isdisjoint(unmapped) else "B"
            notes.append(
                f"{pair.name}: {' and '.join(unmapped)} not compared: file {side} holds the layer's "
                f"{' or '.join(pair.a.hints.unmapped or pair.b.hints.unmapped)} under a name it cannot map "
                "(a .weights.h5 without its config)"
            )
        if pair.bessel:
            n = pair.bessel
            factor = f"{n}/{n - 1}" if (pair.variance_ratio or 1) > 1 else f"{n - 1}/{n}"
            notes.append(
                f"{pair.name}: moving_variance of B = A x {factor} in every channel: Bessel's correction for n = {n} "
                "values per channel (fused and unfused batch norm kernels update the variance with and without it), "
                "not corruption; BN204 does not judge it"
            )
    return notes
