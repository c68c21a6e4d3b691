"""What a rule is: data (code, name, severity, fixes), what it needs, and a pure check function.

A check yields ``(layer, message)`` or ``(layer, message, severity)`` and does no I/O; its docstring is
the rule's documentation (``bncheck rules CODE``). What it receives is declared by its ``needs``:

- ``VALUES``: one BN layer with its values and :class:`~bncheck.stats.Stats` loaded, while analysis streams
  the layers (most rules);
- ``SUMMARIES``: one layer's Stats, once every layer is summarised: it may ask model-wide facts
  (``context.training_evidence``) that need every layer;
- ``GRAPH``: one layer with its values, and the training graph (not run without one);
- ``MODEL``: every BN layer of the model (Stats only);
- ``TWO_MODELS``: the paired layers of two models, a :class:`~bncheck.deltas.DiffReport` (``bncheck diff``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Generic, Protocol, TypeVar

from ..deltas import DiffReport
from ..facts import NOTHING, Framework, GraphFacts
from ..findings import Finding, Severity
from ..layers import BNLayer
from ..thresholds import Thresholds, framework_defaults

# (layer or None for the model, message[, severity (None: the rule's)[, the fix, where the finding knows better]])
Hit = tuple[str | None, str] | tuple[str | None, str, Severity | None] | tuple[str | None, str, Severity | None, str]


class Kind(Enum):
    """Which command runs a rule."""

    INSPECT = "inspect"  # judges one model
    DIFF = "diff"  # judges the change between two


class Needs(Enum):
    """What a rule's check receives (see the module docstring)."""

    VALUES = "one layer's values"
    SUMMARIES = "one layer's summaries, after every layer"
    GRAPH = "one layer's values and the training graph"
    MODEL = "every layer's summaries"
    TWO_MODELS = "the paired layers of two models"

    @property
    def kind(self) -> Kind:
        return Kind.DIFF if self is Needs.TWO_MODELS else Kind.INSPECT


def _no_evidence() -> str | None:
    return None


@dataclass(frozen=True)
class Context:
    """Model-wide facts an inspect rule may need besides the layers themselves."""

    step: int | None  # training steps the file records (updates, not saves); None: unknown
    thresholds: Thresholds
    graph: GraphFacts | None = None  # the training graph beside the model, when there is one
    framework: Framework | None = None  # who wrote the file: the spelling of causes and fixes
    evidence: Callable[[], str | None] = _no_evidence  # asked only when needed: it looks at every layer
    live: bool = False  # a model still training (a guard), not a saved file: judged by what its steps predict

    @property
    def training_evidence(self) -> str | None:
        """Why we believe the model was trained at all, in words; None if nothing says so."""
        return self.evidence()

    @property
    def default_momentum(self) -> tuple[float, str]:
        """The momentum (Keras's spelling: the weight of the history) of a layer whose file does not record it,
        and how to name it: the framework's default (PyTorch's is not Keras's) unless a setting overrides it."""
        momentum, _, named = framework_defaults(self.thresholds, self.framework.value if self.framework else None)
        return momentum, named

    @property
    def default_epsilon(self) -> float:
        """The epsilon of a layer whose file does not record it (the framework's default)."""
        return framework_defaults(self.thresholds, self.framework.value if self.framework else None)[1]


@dataclass(frozen=True)
class DiffContext:
    """What a diff rule needs besides the two models' paired layers."""

    must_not_change: tuple[str, ...]  # layer-name globs the user declared frozen (--frozen)
    thresholds: Thresholds
    framework: Framework | None = None  # who wrote B (the model whose training is judged)
    between: str = "between A and B"  # the span from A to B, in findings ("between step 0 and step 50": a guard's)
    declared: str = "--frozen"  # how must_not_change was declared, in findings


class _Spelled(Protocol):
    """A context that says who wrote the file (the spelling of fixes)."""

    @property
    def framework(self) -> Framework | None: ...


Subject = TypeVar("Subject")
Ctx = TypeVar("Ctx", bound=_Spelled)


@dataclass(frozen=True, kw_only=True)
class Rule(Generic[Subject, Ctx]):
    """A rule of the catalogue; its subclasses say what its check takes."""

    code: str
    name: str
    severity: Severity
    summary: str
    fix: str  # what to do, in one line, whoever wrote the file
    fixes: Mapping[Framework, str] = field(default_factory=lambda: NOTHING)  # ``fix`` as each framework spells it
    model_wide: str = ""  # what it means when it fires on every BN layer of a model (said once in the table)
    model_wide_when: str = ""  # ... and every one of those findings says this (the same condition in each layer)
    needs: Needs
    check: Callable[[Subject, Ctx], Iterable[Hit]]
    takes: ClassVar[tuple[Needs, ...]] = ()  # the needs the subclass's check can take

    def __post_init__(self) -> None:
        if self.needs not in self.takes:
            raise ValueError(f"{self.code}: a {type(self).__name__} cannot need {self.needs.name}")

    @property
    def kind(self) -> Kind:
        return self.needs.kind

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

    def run(self, subject: Subject, context: Ctx) -> list[Finding]:
        """The findings of ``check(subject, context)``. A list, not a generator: a rule runs for each of 20,000
        layers, mostly to find nothing."""
        found = []
        fix = None  # most layers have no finding: spelled only when there is one
        for hit in self.check(subject, context):
            severity = hit[2] if len(hit) >= 3 and hit[2] is not None else self.severity
            fix = self.fix_for(context.framework) if fix is None else fix
            found.append(Finding(self.code, self.name, severity, hit[0], hit[1], hit[3] if len(hit) == 4 else fix))
        return found


@dataclass(frozen=True, kw_only=True)
class LayerRule(Rule[BNLayer, Context]):
    """A rule on one BN layer at a time (needs ``VALUES``, ``SUMMARIES`` or ``GRAPH``)."""

    needs: Needs = Needs.VALUES
    takes = (Needs.VALUES, Needs.SUMMARIES, Needs.GRAPH)


@dataclass(frozen=True, kw_only=True)
class ModelRule(Rule[Sequence[BNLayer], Context]):
    """A rule on every BN layer of one model at once (their summaries)."""

    needs: Needs = Needs.MODEL
    takes = (Needs.MODEL,)


@dataclass(frozen=True, kw_only=True)
class DiffRule(Rule[DiffReport, DiffContext]):
    """A rule on the change between two models."""

    needs: Needs = Needs.TWO_MODELS
    takes = (Needs.TWO_MODELS,)
