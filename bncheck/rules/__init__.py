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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..config import Thresholds
from ..model import NOTHING, BNLayer, Finding, Framework, GraphFacts, Severity

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
    framework: Framework | None = None  # who wrote the file: the spelling of causes and fixes

    @property
    def trained(self) -> str | None:
        """Evidence that the model was trained at all, in words; None if none."""
        return self.evidence()


@dataclass(frozen=True)
class DiffContext:
    """What a diff rule needs besides the two checkpoints' paired layers."""

    frozen: tuple[str, ...]  # layer-name globs the user declared frozen (--frozen)
    thresholds: Thresholds
    framework: Framework | None = None  # who wrote B (the model whose training is judged)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    fix: str  # what to do, in one line, whoever wrote the file
    check: Callable[..., Iterable[Hit]]  # (BNLayer | list[BNLayer], Context) or (DiffReport, DiffContext)
    kind: str = "inspect"  # "inspect" rules judge one model, "diff" rules two (bncheck diff)
    per_layer: bool = False  # the check takes one layer (else all layers, Stats only)
    needs_values: bool = True  # a per-layer check run while the layer's values are loaded (else on Stats, after)
    needs_graph: bool = False  # finds nothing without a training graph (not run then)
    fixes: Mapping[Framework, str] = field(default_factory=lambda: NOTHING)  # ``fix`` as each framework spells it
    model_wide: str = ""  # what it means when it fires on every BN layer of a model (said once in the table)
    model_wide_when: str = ""  # ... and every one of those findings says this (the same condition in each layer)

    @property
    def doc(self) -> str:
        import inspect  # only for the documentation: a slow import

        return inspect.cleandoc(self.check.__doc__ or "")

    def states(self, findings: list[Finding]) -> bool:
        """Whether ``findings`` (one per BN layer of a model) are the condition ``model_wide`` states: each at
        the rule's own severity (a frozen layer's info, a downgraded graph finding are another condition)
        and saying ``model_wide_when``."""
        return bool(self.model_wide) and all(
            f.severity == self.severity and self.model_wide_when in f.message for f in findings
        )

    def fix_for(self, framework: Framework | None) -> str:
        """The fix in the words of ``framework`` (the generic one when it has none of its own)."""
        return self.fixes.get(framework, self.fix) if framework is not None else self.fix

    @property
    def fix_text(self) -> str:
        """The fix in every spelling, as ``bncheck rules CODE`` prints it."""
        lines = [f"In short: {self.fix}"]
        lines += [f"  {framework.label}: {text}" for framework, text in self.fixes.items()]
        return "\n".join(lines)

    def run(self, subject: object, context: Context | DiffContext) -> list[Finding]:
        """Findings of ``check(subject, context)``; subject and context as ``kind`` and ``per_layer`` say.
        A list, not a generator: run 12 times for each of 20,000 layers, mostly to find nothing."""
        found = []
        fix = None  # most layers have no finding: spelled only when there is one
        for hit in self.check(subject, context):
            severity = hit[2] if len(hit) == 3 else self.severity
            fix = self.fix_for(context.framework) if fix is None else fix
            found.append(Finding(self.code, self.name, severity, hit[0], hit[1], fix))
        return found


RULES: dict[str, Rule] = {}


def rule(
    code: str,
    name: str,
    severity: Severity,
    summary: str,
    fix: str,
    kind: str = "inspect",
    needs_graph: bool = False,
    fixes: Mapping[Framework, str] | None = None,
    model_wide: str = "",
    model_wide_when: str = "",
) -> Callable:
    """Register the decorated check function as rule ``code``; ``fixes`` spell ``fix`` per framework."""

    def register(check: Callable[..., Iterable[Hit]]) -> Callable:
        per_layer, values = check in _PER_LAYER, _PER_LAYER.get(check, True)
        RULES[code] = Rule(
            code,
            name,
            severity,
            summary,
            fix,
            check,
            kind,
            per_layer,
            values,
            needs_graph,
            fixes or NOTHING,
            model_wide,
            model_wide_when,
        )
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
