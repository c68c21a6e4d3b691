"""The rule catalogue: a registry of rules, each data plus a pure check function.

A check receives the BN layers of one model (values already loaded) and a
:class:`Context`, and yields ``(layer, message)`` or ``(layer, message, severity)``;
it does no I/O. Its docstring is the rule's documentation (``bncheck rules CODE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config import Thresholds
from ..model import BNLayer, Finding, Severity

Hit = tuple[str | None, str] | tuple[str | None, str, Severity]


@dataclass(frozen=True)
class Context:
    """Model-wide facts a rule may need besides the layers themselves."""

    step: int | None
    step_source: str | None
    trained: str | None  # evidence that the model was trained at all, in words; None if none
    thresholds: Thresholds


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    fix: str
    check: Callable[[list[BNLayer], Context], Iterable[Hit]]

    @property
    def doc(self) -> str:
        return (self.check.__doc__ or "").strip()

    def run(self, layers: list[BNLayer], context: Context) -> Iterator[Finding]:
        for hit in self.check(layers, context):
            severity = hit[2] if len(hit) == 3 else self.severity
            yield Finding(self.code, self.name, severity, hit[0], hit[1])


RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: Severity, summary: str, fix: str) -> Callable:
    """Register the decorated check function as rule ``code``."""

    def register(check: Callable[[list[BNLayer], Context], Iterable[Hit]]) -> Callable:
        RULES[code] = Rule(code, name, severity, summary, fix, check)
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
    from . import values  # noqa: F401  (registers BN001-BN012)


_load()
