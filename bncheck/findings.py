"""What rules return: findings (one rule on one layer) and statements (one rule on every layer of a model)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


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


def codes_by_layer(findings: Iterable[Finding]) -> dict[str | None, dict[str, Severity]]:
    """The codes that fired on each layer (None: the model), sorted, each with its worst severity; one pass."""
    worst: dict[str | None, dict[str, Severity]] = {}
    for finding in findings:
        codes = worst.setdefault(finding.layer, {})
        codes[finding.code] = max(codes.get(finding.code, finding.severity), finding.severity)
    return {layer: dict(sorted(codes.items())) for layer, codes in worst.items()}
