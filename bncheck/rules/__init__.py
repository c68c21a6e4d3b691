"""The rule catalogue: a registry of rules, each data plus a pure check function.

A check receives one BN layer (``@per_layer``: its values and their
:class:`~bncheck.model.Stats` loaded; ``@per_layer(values=False)``: Stats only, once every
layer is summarised) or all the BN layers of one model (Stats only), and a :class:`Context`
(``kind="inspect"``); or the paired layers of two models, a
:class:`~bncheck.model.DiffReport`, and a :class:`DiffContext` (``kind="diff"``).
It yields ``(layer, message)`` or ``(layer, message, severity)`` and does no I/O.
Its docstring is the rule's documentation (``bncheck rules CODE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config import Thresholds
from ..model import BNLayer, Finding, GraphFacts, Severity

Hit = tuple[str | None, str] | tuple[str | None, str, Severity]


def _no_evidence() -> str | None:
    return None


@dataclass(frozen=True)
class Context:
    """Model-wide facts a rule may need besides the layers themselves."""

    step: int | None
    step_source: str | None
    thresholds: Thresholds
    graph: GraphFacts | None = None  # the training graph beside the model, when there is one
    evidence: Callable[[], str | None] = _no_evidence  # asked only when needed: it looks at every layer

    @property
    def trained(self) -> str | None:
        """Evidence that the model was trained at all, in words; None if none."""
        return self.evidence()


@dataclass(frozen=True)
class DiffContext:
    """What a diff rule needs besides the two checkpoints' paired layers."""

    frozen: tuple[str, ...]  # layer-name globs the user declared frozen (--frozen)
    thresholds: Thresholds


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    fix: str
    check: Callable[..., Iterable[Hit]]  # (BNLayer | list[BNLayer], Context) or (DiffReport, DiffContext)
    kind: str = "inspect"  # "inspect" rules judge one model, "diff" rules two (bncheck diff)
    per_layer: bool = False  # the check takes one layer (else all layers, Stats only)
    needs_values: bool = True  # a per-layer check run while the layer's values are loaded (else on Stats, after)
    needs_graph: bool = False  # finds nothing without a training graph (not run then)

    @property
    def doc(self) -> str:
        import inspect  # only for the documentation: a slow import

        return inspect.cleandoc(self.check.__doc__ or "")

    def run(self, subject: object, context: object) -> Iterator[Finding]:
        """Findings of ``check(subject, context)``; subject and context as ``kind`` and ``per_layer`` say."""
        for hit in self.check(subject, context):
            severity = hit[2] if len(hit) == 3 else self.severity
            yield Finding(self.code, self.name, severity, hit[0], hit[1])


RULES: dict[str, Rule] = {}


def rule(
    code: str, name: str, severity: Severity, summary: str, fix: str, kind: str = "inspect", needs_graph: bool = False
) -> Callable:
    """Register the decorated check function as rule ``code``."""

    def register(check: Callable[..., Iterable[Hit]]) -> Callable:
        per_layer, values = check in _PER_LAYER, _PER_LAYER.get(check, True)
        RULES[code] = Rule(code, name, severity, summary, fix, check, kind, per_layer, values, needs_graph)
        return check

    return register


_PER_LAYER: dict[Callable, bool] = {}  # per-layer check -> whether it needs the values


def per_layer(check: Callable[[BNLayer, Context], Iterable[Hit]] | None = None, *, values: bool = True) -> Callable:
    """Mark a check as one of a single layer. It runs while the layer's values are loaded; with
    ``values=False`` once every layer is summarised, on Stats alone, and may then ask model-wide
    facts (``context.trained``) that need every layer."""

    def mark(check: Callable[[BNLayer, Context], Iterable[Hit]]) -> Callable:
        _PER_LAYER[check] = values
        return check

    return mark if check is None else mark(check)


def _load() -> None:
    from importlib import import_module

    # In catalogue order: values BN001-BN013, graph BN101-BN105, diff BN201-BN204.
    for module in ("values", "graph", "diff"):
        import_module(f".{module}", __name__)


_load()
