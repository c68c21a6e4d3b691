"""The nouns of bncheck: variables, checkpoints, BN layers, findings and reports."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

ROLES = ("gamma", "beta", "moving_mean", "moving_variance")


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


class Framework(Enum):
    """Who wrote a file, in the terms its fixes are spelled in."""

    TF1 = "TF1"  # tf.compat.v1 graphs: name-based checkpoints, .meta, TF1 SavedModels, frozen GraphDefs
    TF2 = "TF2"  # tf.train.Checkpoint / tf.saved_model in eager TF2: object-based checkpoints, TF2 SavedModels
    KERAS = "Keras"  # model.fit / model.save: .keras, .h5, .weights.h5
    ONNX = "ONNX"  # an exporter's model (torch.onnx, tf2onnx)

    @property
    def label(self) -> str:
        return _FRAMEWORK_LABELS[self]


_FRAMEWORK_LABELS = {
    Framework.TF1: "TF1 (tf.compat.v1 graphs and Saver checkpoints)",
    Framework.TF2: "TF2 (tf.train.Checkpoint, tf.saved_model, custom training loops)",
    Framework.KERAS: "Keras (model.fit, .keras/.h5 files)",
    Framework.ONNX: "ONNX (models exported by torch.onnx or tf2onnx)",
}


NOTHING: Mapping = MappingProxyType({})  # the empty slots, values, stats of many thousands of objects, shared


@dataclass(eq=False, slots=True)  # slots: a checkpoint may hold 80,000 of them
class Variable:
    """One saved tensor, its value loaded only when asked for."""

    key: str  # the key in the file
    name: str  # the name users know (object-graph full_name, else the key)
    dtype: str
    shape: tuple[int, ...]
    read: Callable[[str], np.ndarray] = field(repr=False)  # the file's reader: key -> value (one per file)
    slots: Mapping[str, Variable] = field(default_factory=lambda: NOTHING)  # optimizer slots, EMA shadows

    def load(self) -> np.ndarray:
        return self.read(self.key)

    def add_slot(self, name: str, slot: Variable) -> None:
        """Attach an optimizer slot or EMA shadow; the first one of a name stays."""
        if name not in self.slots:
            self.slots = {**self.slots, name: slot}

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # 1 for a scalar


class Stats(NamedTuple):
    """A loaded variable in brief: what the renderers show and the rules test before looking closer."""

    size: int
    nonfinite: int  # elements NaN or +-Inf
    min: float | None  # min / max / mean over the finite elements; None when there are none
    max: float | None
    mean: float | None


@dataclass(frozen=True)
class LayerHints:
    """What a format records about a layer beyond its values (Keras configs, graphs)."""

    momentum: float | None = None
    epsilon: float | None = None
    frozen: bool = False
    is_bn: bool = True
    training_mode: bool = False  # an exported node that computes batch statistics (ONNX training_mode=1)
    unmapped: tuple[str, ...] = ()  # roles the file may hold under a name it cannot map (gamma or beta: vars/0)


@dataclass(frozen=True)
class GraphVariable:
    """What a training graph says about one variable (keyed by its checkpoint name)."""

    name: str
    update_ops: tuple[str, ...] = ()  # moving-average assign ops that write it
    updates_run: bool = False  # a train op depends on one of them
    updates_collected: bool = False  # one of them is in the UPDATE_OPS collection
    saved: bool | None = None  # in the Saver's tensor list; None: the graph has no Saver
    trainable: bool = False  # in the trainable_variables collection
    momentum: float | None = None  # 1 - the update's decay, when a constant
    decay_placeholder: str | None = None  # placeholder the decay depends on (keras_learning_phase)


@dataclass(frozen=True)
class GraphLayer:
    """A BN layer found by the structure of a graph (the ops that normalise with it), not by names."""

    name: str  # the common scope of its variables, else the scope of the normalising op
    members: dict[str, str]  # role -> variable (or constant) name, traced through Identity/read nodes
    epsilon: float | None = None
    op: str = ""  # the node that normalises (FusedBatchNorm*, or the Rsqrt of tf.nn.batch_normalization)
    updates: dict[str, str] = field(default_factory=dict)  # role -> assign op averaging a batch statistic into it


@dataclass(frozen=True)
class GraphFacts:
    """A training graph digested for the graph rules: no nodes, only what the rules consult."""

    path: str
    variables: dict[str, GraphVariable]  # by variable name (partition suffixes removed)
    train_ops: tuple[str, ...] = ()  # empty: not a training graph
    saver: str | None = None  # the save op(s) of the graph's Saver
    epsilon: dict[str, float] = field(default_factory=dict)  # by layer scope, from the normalisation ops
    notes: tuple[str, ...] = ()
    layers: tuple[GraphLayer, ...] = ()  # BN layers found by structure


@dataclass
class Checkpoint:
    """Everything a reader found in one model file, before any grouping."""

    path: str
    format: str
    variables: list[Variable]
    step: int | None = None
    step_source: str | None = None
    hints: dict[str, LayerHints] = field(default_factory=dict)  # by layer name
    problems: list[str] = field(default_factory=list)  # what could not be read
    notes: list[str] = field(default_factory=list)  # what the reader saw but could not settle (shown, not judged)
    file: str | None = None  # the one file that stands for the model (e.g. the .index); default: path
    graph: GraphFacts | None = None  # the training graph beside it (.meta, SavedModel "train" tag)
    structure: list[GraphLayer] | None = None  # BN layers found by a graph's structure; None: no graph read
    framework: Framework | None = None  # who wrote it, for the spelling of causes and fixes; None: unknown
    close: Callable[[], None] = field(default=lambda: None, repr=False)  # closes the files the values are read from


NO_HINTS = LayerHints()


@dataclass(eq=False, slots=True)
class BNLayer:
    """The variables of one BatchNormalization layer, and their values once loaded."""

    name: str
    variables: dict[str, Variable]  # role ('gamma', ..., or an extra such as 'renorm_mean') -> variable
    hints: LayerHints = NO_HINTS
    values: Mapping[str, np.ndarray] = field(default_factory=lambda: NOTHING)  # role -> array, set by analysis
    stats: Mapping[str, Stats] = field(default_factory=lambda: NOTHING)  # role -> summary; kept when values are not
    fingerprint: bytes | None = None  # equal in two layers whose moving statistics are bit-identical
    unreadable: str | None = None  # why values could not be loaded

    def get(self, role: str) -> Variable | None:
        return self.variables.get(role)

    @property
    def channels(self) -> int | None:
        for role in ROLES:
            if role in self.variables:
                return self.variables[role].size
        return None


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    layer: str | None
    message: str
    fix: str = ""  # what to do, in the words of the file's framework
    known: bool = False  # listed in the baseline: shown, but does not fail the run


@dataclass(frozen=True)
class Statement:
    """A condition of the whole model (a rule that fired on every BN layer), said once in the table;
    the findings stay one per layer."""

    code: str
    severity: Severity
    layers: int
    message: str


@dataclass
class Report:
    """The outcome of inspecting one model file."""

    path: str
    format: str
    step: int | None = None
    step_source: str | None = None
    layers: list[BNLayer] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was seen but not judged
    errors: list[str] = field(default_factory=list)  # what could not be read (exit 2)
    file: str | None = None  # the file findings point at (SARIF, annotations); default: path
    framework: Framework | None = None
    statements: list[Statement] = field(default_factory=list)  # model-wide conditions

    def codes(self, layer: str) -> list[str]:
        return codes_of(self.findings, layer)


def codes_of(findings: list[Finding], layer: str) -> list[str]:
    """The rule codes that fired on ``layer``, sorted."""
    return sorted({f.code for f in findings if f.layer == layer})


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    return {
        "errors": sum(f.severity == Severity.ERROR for f in findings),
        "warnings": sum(f.severity == Severity.WARNING for f in findings),
        "infos": sum(f.severity == Severity.INFO for f in findings),
    }


def summarize(reports: list[Report]) -> dict[str, int]:
    """Counts shown at the end of every output format."""
    findings = [f for r in reports for f in r.findings]
    return {
        "files": len(reports),
        "layers": sum(len(r.layers) for r in reports),
        **severity_counts(findings),
        "unreadable": sum(bool(r.errors) for r in reports),
        "known": sum(f.known for f in findings),
    }


def exit_code(unreadable: bool, findings: list[Finding], fail_on: Severity | None) -> int:
    """0 clean, 1 findings (not known from a baseline) at or above ``fail_on``, 2 anything unreadable."""
    if unreadable:
        return 2
    if fail_on is not None and any(f.severity >= fail_on and not f.known for f in findings):
        return 1
    return 0


# --------------------------------------------------------------------------- diff (two checkpoints)

CHANGED = ("changed", "reshaped", "added", "removed")


@dataclass(frozen=True)
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


@dataclass(eq=False)
class LayerPair:
    """One BN layer present in both checkpoints, and what changed in it."""

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


@dataclass
class DiffReport:
    """The outcome of comparing the BN state of two model files A and B."""

    a: Report  # each side's layers with values; no findings
    b: Report
    pairs: list[LayerPair] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)  # BN layers removed in B
    only_b: list[str] = field(default_factory=list)  # BN layers added in B
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.a.errors + self.b.errors

    def codes(self, layer: str) -> list[str]:
        return codes_of(self.findings, layer)


def summarize_diff(report: DiffReport) -> dict[str, int]:
    """Counts shown at the end of every diff output format."""
    changed = sum(bool(pair.changed()) for pair in report.pairs)
    return {
        **severity_counts(report.findings),
        "paired": len(report.pairs),
        "changed": changed,
        "identical": sum(p.identical for p in report.pairs),
        "unpaired": len(report.only_a) + len(report.only_b),
        "unreadable": sum(bool(r.errors) for r in (report.a, report.b)),
    }
