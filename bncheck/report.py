"""What analysis returns: the outcome of inspecting one model."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .facts import Framework, Step
from .findings import Finding, Statement, codes_by_layer
from .layers import BNLayer


@dataclass(frozen=True)
class Report:
    """The BN layers of one model, what the rules found in them, and what could not be read."""

    path: str  # the model as the user named it (or a scan found it)
    format: str
    step: Step | None = None
    layers: list[BNLayer] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was seen but not judged
    errors: list[str] = field(default_factory=list)  # what could not be read (exit 2)
    main_file: str = ""  # the one file findings point at (SARIF, annotations); default: path
    framework: Framework | None = None
    statements: list[Statement] = field(default_factory=list)  # model-wide conditions

    def __post_init__(self) -> None:
        if not self.main_file:
            object.__setattr__(self, "main_file", self.path)

    def codes(self, layer: str) -> list[str]:
        """The rule codes that fired on ``layer``, sorted."""
        return list(codes_by_layer(f for f in self.findings if f.layer == layer).get(layer, ()))

    def parted(self) -> tuple[Report, dict[str, list[Any]]]:
        """This report without its layers, and the layers: how a worker process sends it (supervisor.py)."""
        return replace(self, layers=[]), {"layers": self.layers}

    def joined(self, parts: dict[str, list[Any]]) -> Report:
        """The report :meth:`parted` split, whole again."""
        return replace(self, layers=parts.get("layers", []))
