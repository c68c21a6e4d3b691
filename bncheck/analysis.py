"""Run the selected rules over the BN layers of a model -> :class:`Report`.

Values are loaded a chunk of layers at a time: summarised (:class:`~bncheck.model.Stats`),
checked by the per-layer rules that need them and, unless the caller keeps them, dropped
again, so memory holds one chunk of values whatever the size of the model. The rules that
need every layer (the model-wide ones, and those asking whether the model trained at all)
run afterwards, on the Stats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cache

import numpy as np

from .config import Settings
from .errors import BncheckError, FormatError
from .grouping import group_layers
from .model import NOTHING, BNLayer, Checkpoint, Finding, Report, Statement, Variable
from .rules import RULES, Context
from .rules.values import at_initial
from .summary import PackedStats, fingerprint, summarise

CHUNK_ELEMENTS = 1 << 18  # values loaded at once (2 MiB as float64), unless one layer holds more


def read_layers(checkpoint: Checkpoint, load: bool = True) -> Report:
    """Group the checkpoint's variables into BN layers and (``load``) load their values, only those; no rules."""
    grouping = group_layers(checkpoint)
    report = Report(
        checkpoint.path,
        checkpoint.format,
        checkpoint.step,
        checkpoint.step_source,
        grouping.layers,
        errors=list(checkpoint.problems),
        file=checkpoint.file or checkpoint.path,
        framework=checkpoint.framework,
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
    if load and not checkpoint.problems:
        for chunk in _chunks(report.layers):
            load_values(chunk, report)
    return report


def analyse(checkpoint: Checkpoint, settings: Settings, keep_values: bool = True) -> Report:
    """Read the BN layers, run the selected inspect rules; ``keep_values=False`` keeps only the Stats."""
    report = read_layers(checkpoint, load=False)
    counts_steps = checkpoint.step_source is not None and not checkpoint.step_source.endswith("save_counter")
    step = checkpoint.step if counts_steps else None  # save_counter counts saves, not updates

    @cache
    def evidence() -> str | None:
        return _training_evidence(step, checkpoint.step_source, report.layers)

    context = Context(
        step, checkpoint.step_source, settings.thresholds, checkpoint.graph, evidence, checkpoint.framework
    )
    wanted = [rule for code, rule in RULES.items() if rule.kind == "inspect" and settings.wants(code)]
    wanted = [rule for rule in wanted if checkpoint.graph or not rule.needs_graph]
    # Per-layer rules on Stats alone wait for every layer only when they may need the evidence of all
    # layers; a step count answers whether the model trained (the usual case): then they run at once.
    streamed = [rule for rule in wanted if rule.per_layer and (rule.needs_values or step)]
    in_stream = context if step else replace(context, evidence=_not_before_every_layer)
    found = []
    for chunk in _chunks(report.layers):
        if not checkpoint.problems:
            load_values(chunk, report)
        for layer in chunk:
            for rule in streamed:
                found.extend(rule.run(layer, in_stream))
        if not keep_values:
            for layer in chunk:
                layer.values = NOTHING
                layer.stats = PackedStats(layer.stats)
    for rule in wanted:  # the rules that need every layer summarised
        if not rule.per_layer:
            found.extend(rule.run(report.layers, context))
        elif rule not in streamed:
            for layer in report.layers:
                found.extend(rule.run(layer, context))
    paths = (checkpoint.path, checkpoint.file or checkpoint.path)
    report.findings = [f for f in found if not settings.ignored_at(f.code, paths, f.layer)]
    order = {layer.name: i for i, layer in enumerate(report.layers)}
    report.findings.sort(key=lambda f: (order.get(f.layer or "", -1), f.code))
    report.statements = model_wide(report)
    return report


def model_wide(report: Report) -> list[Statement]:
    """The rules that fired on every BN layer of a model (two or more) and say what that means."""
    by_code: dict[str, list[Finding]] = {}
    for finding in report.findings:
        by_code.setdefault(finding.code, []).append(finding)
    layers = {layer.name for layer in report.layers}
    statements = []
    for code, findings in by_code.items():
        rule = RULES[code]
        if len(layers) >= 2 and {f.layer for f in findings} >= layers and rule.states(findings):
            statements.append(Statement(code, rule.severity, len(layers), rule.model_wide))
    return sorted(statements, key=lambda statement: statement.code)


def _not_before_every_layer() -> str | None:
    raise RuntimeError("a rule that asks context.trained must be @per_layer(values=False)")


def _chunks(layers: list[BNLayer]) -> Iterator[list[BNLayer]]:
    """Consecutive runs of layers holding about CHUNK_ELEMENTS values together."""
    chunk: list[BNLayer] = []
    elements = 0
    for layer in layers:
        chunk.append(layer)
        elements += sum([variable.size for variable in layer.variables.values()])
        if elements >= CHUNK_ELEMENTS:
            yield chunk
            chunk, elements = [], 0
    if chunk:
        yield chunk


def load_values(layers: list[BNLayer], report: Report) -> None:
    """Load and summarise the values of ``layers`` not loaded yet; a layer that fails is unreadable."""
    pending = [layer for layer in layers if not layer.values and layer.unreadable is None]
    load = _loader([variable for layer in pending for variable in layer.variables.values()])
    loaded = []
    for layer in pending:
        values = {}
        for role, variable in layer.variables.items():
            try:
                value = load(variable)
                if value.dtype.kind not in "iuf":
                    what = f"BN variable '{variable.name}' holds {value.dtype} data, not numbers"
                    raise FormatError(f"{report.path}: {what}")
                values[role] = value
            except BncheckError as exc:
                values = {}
                layer.unreadable = str(exc)
                report.errors.append(str(exc))
                break
        if values:
            layer.values = values
            loaded.append(layer)
    stats = iter(summarise([value for layer in loaded for value in layer.values.values()]))
    for layer in loaded:
        layer.stats = {role: next(stats) for role in layer.values}
        mean, variance = layer.values.get("moving_mean"), layer.values.get("moving_variance")
        if mean is not None and variance is not None:
            layer.fingerprint = fingerprint([mean, variance])


def _loader(variables: list[Variable]) -> Callable[[Variable], np.ndarray]:
    """How to load each of ``variables``: from one ``read_many`` of them all when they share a reader that has
    one (a checkpoint's :class:`~.readers.bundle.Bundle`: it reads adjacent tensors together), else one at a
    time, as also when that fails: each failure is then told for its own layer."""
    read_many = getattr(variables[0].read, "read_many", None) if variables else None
    if read_many is not None and all(variable.read is variables[0].read for variable in variables):
        try:
            return dict(zip(variables, read_many([variable.key for variable in variables]), strict=True)).__getitem__
        except BncheckError:
            pass
    return Variable.load


def _training_evidence(step: int | None, source: str | None, layers: list[BNLayer]) -> str | None:
    """Why we believe the model was trained at all: a step count, or gamma/beta that moved in some layer."""
    if step:
        return f"{source} = {step}"
    moved = [layer.name for layer in layers if any(at_initial(layer, role) is False for role in ("gamma", "beta"))]
    if moved:  # (at_initial is False for NaN too: a NaN moved)
        return f"gamma/beta moved in {len(moved)} other layer(s), e.g. {moved[0]}"
    return None
