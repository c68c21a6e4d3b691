"""The nouns of bncheck: variables, checkpoints, BN layers, findings and reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

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


@dataclass(eq=False)
class Variable:
    """One saved tensor, its value loaded only when asked for."""

    key: str  # the key in the file
    name: str  # the name users know (object-graph full_name, else the key)
    dtype: str
    shape: tuple[int, ...]
    load: Callable[[], np.ndarray] = field(repr=False)
    slots: dict[str, Variable] = field(default_factory=dict)  # optimizer slots, EMA shadows

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass(frozen=True)
class LayerHints:
    """What a format records about a layer beyond its values (Keras configs, graphs)."""

    momentum: float | None = None
    epsilon: float | None = None
    frozen: bool = False
    is_bn: bool = True


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


@dataclass(eq=False)
class BNLayer:
    """The variables of one BatchNormalization layer, and their values once loaded."""

    name: str
    variables: dict[str, Variable]  # role ('gamma', ..., or an extra such as 'renorm_mean') -> variable
    hints: LayerHints = LayerHints()
    values: dict[str, np.ndarray] = field(default_factory=dict)  # role -> array, filled by analysis
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

    def codes(self, layer: str) -> list[str]:
        return sorted({f.code for f in self.findings if f.layer == layer})


def summarize(reports: list[Report]) -> dict[str, int]:
    """Counts shown at the end of every output format."""
    findings = [f for r in reports for f in r.findings]
    return {
        "files": len(reports),
        "layers": sum(len(r.layers) for r in reports),
        "errors": sum(f.severity == Severity.ERROR for f in findings),
        "warnings": sum(f.severity == Severity.WARNING for f in findings),
        "infos": sum(f.severity == Severity.INFO for f in findings),
        "unreadable": sum(bool(r.errors) for r in reports),
    }


def exit_code(reports: list[Report], fail_on: Severity | None) -> int:
    """0 clean, 1 findings at or above ``fail_on``, 2 anything unreadable."""
    if any(r.errors for r in reports):
        return 2
    if fail_on is not None and any(f.severity >= fail_on for r in reports for f in r.findings):
        return 1
    return 0
