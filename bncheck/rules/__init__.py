"""The rule catalogue: a registry of rules, each data plus a pure check function.

A check receives the BN layers of one model (values already loaded) and a
:class:`Context` (``kind="inspect"``), or the paired layers of two models, a
:class:`~bncheck.model.DiffReport`, and a :class:`DiffContext` (``kind="diff"``),
and yields ``(layer, message)`` or ``(layer, message, severity)``;
it does no I/O. Its docstring is the rule's documentation (``bncheck rules CODE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config import Thresholds
from ..model import BNLayer, Finding, GraphFacts, Severity

Hit = tuple[str | None, str] | tuple[str | None, str, Severity]


@dataclass(frozen=True)
class Context:
    """Model-wide facts a rule may need besides the layers themselves."""

    step: int | None
    step_source: str | None
    trained: str | None  # evidence that the model was trained at all, in words; None if none
    thresholds: Thresholds
    graph: GraphFacts | None = None  # the training graph beside the model, when there is one


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
    check: Callable[..., Iterable[Hit]]  # inspect: (list[BNLayer], Context); diff: (DiffReport, DiffContext)
    kind: str = "inspect"  # "inspect" rules judge one model, "diff" rules two (bncheck diff)

    @property
    def doc(self) -> str:
        import inspect  # only for the documentation: a slow import

        return inspect.cleandoc(self.check.__doc__ or "")

    def run(self, subject: object, context: object) -> Iterator[Finding]:
        """Findings of ``check(subject, context)``; subject and context as ``kind`` says."""
        for hit in self.check(subject, context):
            severity = hit[2] if len(hit) == 3 else self.severity
            yield Finding(self.code, self.name, severity, hit[0], hit[1])


RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: Severity, summary: str, fix: str, kind: str = "inspect") -> Callable:
    """Register the decorated check function as rule ``code``."""

    def register(check: Callable[..., Iterable[Hit]]) -> Callable:
        RULES[code] = Rule(code, name, severity, summary, fix, check, kind)
        return check

    return register


def per_layer(check: Callable[[BNLayer, Context], Iterable[Hit]]) -> Callable:
    """Lift a check of one layer to a check of all layers (keeps the docstring)."""

    def run(layers: list[BNLayer], context: Context) -> Iterator[Hit]:
        for layer in layers:
            yield from check(layer, context)

    run.__doc__ = check.__doc__
    return run


def _load() -> None:
    from importlib import import_module

    # In catalogue order: values BN001-BN013, graph BN101-BN105, diff BN201-BN204.
    for module in ("values", "graph", "diff"):
        import_module(f".{module}", __name__)


_load()
