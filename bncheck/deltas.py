"""What comparison returns: how the BN state changed from one model (A) to another (B)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .findings import Finding, codes_by_layer
from .layers import BNLayer
from .report import Report

CHANGED = ("changed", "reshaped", "added", "removed")


@dataclass(frozen=True, slots=True)  # slots: a diff of 20,000 layers makes 80,000
class Delta:
    """How one variable of a paired layer differs from A to B (values compared in float64).

    ``status``: identical (bit-identical), within (differs within --rtol/--atol), changed,
    reshaped, added (only in B), removed (only in A), not read, or not mapped (in one file, and
    the other cannot say which of its variables it is: a Keras 3 ``.weights.h5`` without config).
    ``max_abs`` is over the finite changes; ``nonfinite`` counts the elements NaN or Inf on one
    side only (or Inf of opposite signs). ``max_rel`` is ``max_abs`` divided by the smaller of
    max |A| and max |B| (symmetric in A, B).
    """

    status: str
    max_abs: float | None = None
    max_rel: float | None = None
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    nonfinite: int = 0

    @property
    def changed(self) -> bool:
        return self.status in CHANGED


@dataclass(frozen=True, eq=False, slots=True)
class LayerPair:
    """One BN layer present in both models, and what changed in it."""

    name: str
    a: BNLayer
    b: BNLayer
    deltas: dict[str, Delta]  # role -> delta, for every role in A or B
    variance_ratio: float | None = None  # B / A when every channel's moving_variance ratio is this one constant
    bessel: int | None = None  # n when that ratio is n/(n-1) or (n-1)/n: Bessel's correction, not a shift

    @property
    def identical(self) -> bool:
        """Every variable compared is bit-identical (one that cannot be mapped is not compared)."""
        compared = [d.status for d in self.deltas.values() if d.status != "not mapped"]
        return bool(compared) and all(status == "identical" for status in compared)

    def changed(self, *roles: str) -> list[str]:
        """The given roles (default: all) that changed beyond tolerance."""
        return [r for r in roles or self.deltas if r in self.deltas and self.deltas[r].changed]


@dataclass(frozen=True)
class DiffReport:
    """The outcome of comparing the BN state of two models A and B."""

    a: Report  # each side's layers as read (an unreadable one says why): no values, Stats or findings
    b: Report
    pairs: list[LayerPair] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)  # BN layers removed in B
    only_b: list[str] = field(default_factory=list)  # BN layers added in B
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    declared_frozen: tuple[str, ...] = ()  # layer-name globs the user declared frozen (--frozen, a guard's frozen=)

    @property
    def errors(self) -> list[str]:
        return self.a.errors + self.b.errors

    def codes(self, layer: str) -> list[str]:
        """The rule codes that fired on ``layer``, sorted."""
        return list(codes_by_layer(f for f in self.findings if f.layer == layer).get(layer, ()))

    def parted(self) -> tuple[DiffReport, dict[str, list[Any]]]:
        """This report without its long lists, and the lists: how a worker process sends it (supervisor.py).
        A pair names its two layers by its name (comparison pairs a side's layers by their unique names), so
        each layer is sent once and no table of places is built."""
        pairs = [(p.name, p.deltas, p.variance_ratio, p.bessel) for p in self.pairs]
        skeleton = replace(self, a=replace(self.a, layers=[]), b=replace(self.b, layers=[]), pairs=[])
        return skeleton, {"a": self.a.layers, "b": self.b.layers, "pairs": pairs}

    def joined(self, parts: dict[str, list[Any]]) -> DiffReport:
        """The report :meth:`parted` split, whole again: each pair holding the very layers of its sides."""
        a, b = parts.get("a", []), parts.get("b", [])
        in_a, in_b = {layer.name: layer for layer in a}, {layer.name: layer for layer in b}
        pairs = [LayerPair(name, in_a[name], in_b[name], *rest) for name, *rest in parts.get("pairs", [])]
        return replace(self, a=replace(self.a, layers=a), b=replace(self.b, layers=b), pairs=pairs)
