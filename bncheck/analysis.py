"""Run the selected rules over the BN layers of a model -> :class:`Report`."""

from __future__ import annotations

import numpy as np

from .config import Settings
from .errors import BncheckError, FormatError
from .grouping import group_layers
from .model import BNLayer, Checkpoint, Report
from .rules import RULES, Context
from .rules.values import INITIAL


def read_layers(checkpoint: Checkpoint) -> Report:
    """Group the checkpoint's variables into BN layers and load their values (only those); no rules."""
    grouping = group_layers(checkpoint)
    report = Report(
        checkpoint.path,
        checkpoint.format,
        checkpoint.step,
        checkpoint.step_source,
        grouping.layers,
        errors=list(checkpoint.problems),
        file=checkpoint.file or checkpoint.path,
    )
    report.notes.extend(checkpoint.notes)
    report.notes.extend(grouping.notes)
    if grouping.unconfirmed:
        examples = ", ".join(grouping.unconfirmed[:3])
        report.notes.append(
            f"{len(grouping.unconfirmed)} scope(s) hold gamma/beta without moving statistics under names that do "
            f"not say batch norm ({examples}{', ...' if len(grouping.unconfirmed) > 3 else ''}); "
            "they may be BN layers that use batch statistics only, or another normalisation: not checked"
        )
    if not checkpoint.problems:
        load_values(grouping.layers, report)
    return report


def analyse(checkpoint: Checkpoint, settings: Settings) -> Report:
    """Read the BN layers, run the selected inspect rules."""
    report = read_layers(checkpoint)
    layers = report.layers
    counts_steps = checkpoint.step_source is not None and not checkpoint.step_source.endswith("save_counter")
    step = checkpoint.step if counts_steps else None  # save_counter counts saves, not updates
    context = Context(
        step,
        checkpoint.step_source,
        _training_evidence(step, checkpoint.step_source, layers),
        settings.thresholds,
        checkpoint.graph,
    )
    for code, rule in RULES.items():
        if rule.kind != "diff" and settings.wants(code):
            found = rule.run(layers, context)
            paths = (checkpoint.path, checkpoint.file or checkpoint.path)
            report.findings.extend(f for f in found if not settings.ignored_at(f.code, paths, f.layer))
    order = {layer.name: i for i, layer in enumerate(layers)}
    report.findings.sort(key=lambda f: (order.get(f.layer or "", -1), f.code))
    return report


def load_values(layers: list[BNLayer], report: Report) -> None:
    for layer in layers:
        for role, variable in layer.variables.items():
            try:
                value = np.asarray(variable.load())
                if value.dtype.kind not in "iuf":
                    what = f"BN variable '{variable.name}' holds {value.dtype} data, not numbers"
                    raise FormatError(f"{report.path}: {what}")
                layer.values[role] = value
            except BncheckError as exc:
                layer.values.clear()
                layer.unreadable = str(exc)
                report.errors.append(str(exc))
                break


def _training_evidence(step: int | None, source: str | None, layers: list[BNLayer]) -> str | None:
    """Why we believe the model was trained at all: a step count, or gamma/beta that moved."""
    if step:
        return f"{source} = {step}"
    moved = [
        layer.name
        for layer in layers
        if any(role in layer.values and np.any(layer.values[role] != INITIAL[role]) for role in ("gamma", "beta"))
    ]
    if moved:
        return f"gamma/beta moved in {len(moved)} other layer(s), e.g. {moved[0]}"
    return None
