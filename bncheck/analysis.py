"""Run the selected inspect rules over the BN layers of a model -> :class:`~bncheck.report.Report`.

Values are loaded a chunk of layers at a time: summarised (:class:`~bncheck.stats.Stats`),
checked by the rules that need them and, unless the caller keeps them, dropped again, so
memory holds one chunk of values whatever the size of the model. The rules that need every
layer (``Needs.MODEL``, and ``Needs.SUMMARIES`` when it takes all layers to say whether the model
trained at all) run afterwards, on the Stats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import cache

import numpy as np

from .config import Settings
from .errors import BncheckError, FormatError
from .facts import ModelFile, Variable
from .findings import Finding, Statement
from .grouping import group_layers
from .layers import BNLayer
from .report import Report
from .rules import RULES, Context, Kind, LayerRule, ModelRule, Needs, of_kind
from .scales import with_scales
from .stats import PackedStats, digest, summarise

CHUNK_ELEMENTS = 1 << 18  # values loaded at once (2 MiB as float64), unless one layer holds more


def read_layers(model: ModelFile, load: bool = True) -> Report:
    """The BN layers of ``model`` with (``load``) their values loaded; no rules."""
    layers, notes = _grouped(model)
    errors = list(model.errors)
    if load and not model.errors:
        layers = [layer for chunk in chunks(layers) for layer in _load(chunk, model.path, errors)]
    return _report(model, layers, notes=notes, errors=errors)


def analyse(model: ModelFile, settings: Settings, keep_values: bool = True, live: bool = False) -> Report:
    """The BN layers of ``model`` and what the selected inspect rules find in them; ``keep_values=False``
    keeps only the Stats of each layer; ``live``: ``model`` is a snapshot of one still training (a guard's)."""
    grouped, notes = _grouped(model)
    errors = list(model.errors)
    step = model.step.count if model.step is not None and model.step.counts_updates else None
    layers: list[BNLayer] = []  # the loaded layers, as the stream makes them

    @cache
    def evidence() -> str | None:
        return _training_evidence(step, model, layers)

    context = Context(step, settings.thresholds, model.graph, model.framework, evidence, live)
    wanted = [
        rule
        for rule in of_kind(Kind.INSPECT)
        if settings.wants(rule.code) and (model.graph is not None or rule.needs is not Needs.GRAPH)
    ]
    # Rules on Stats alone wait for every layer only when they may need the evidence of all layers;
    # a step count answers whether the model trained (the usual case): then they run at once.
    per_layer = [rule for rule in wanted if isinstance(rule, LayerRule)]
    streamed = [rule for rule in per_layer if rule.needs is not Needs.SUMMARIES or step]
    waiting = [rule for rule in per_layer if rule not in streamed]
    in_stream = context if step else replace(context, evidence=_not_before_every_layer)
    found: list[Finding] = []
    for chunk in chunks(grouped):
        loaded = chunk if model.errors else _load(chunk, model.path, errors)
        if settings.scales and not model.errors:
            loaded = with_scales(loaded, context.default_epsilon)
        for layer in loaded:
            for rule in streamed:
                found.extend(rule.run(layer, in_stream))
        layers.extend(loaded if keep_values else [layer.summarised(PackedStats(layer.stats)) for layer in loaded])
    for rule in waiting:
        for layer in layers:
            found.extend(rule.run(layer, context))
    for rule in wanted:
        if isinstance(rule, ModelRule):
            found.extend(rule.run(layers, context))
    paths = (model.path, model.main_file)
    findings = [f for f in found if not settings.ignored_at(f.code, paths, f.layer)]
    order = {layer.name: i for i, layer in enumerate(layers)}
    findings.sort(key=lambda f: (order.get(f.layer or "", -1), f.code))
    return _report(model, layers, findings, notes, errors, model_wide(findings, layers))


def _grouped(model: ModelFile) -> tuple[list[BNLayer], list[str]]:
    """The BN layers of ``model`` as grouping finds them (no values yet), and the notes of both."""
    grouping = group_layers(model)
    notes = [*model.notes, *grouping.notes]
    if grouping.unconfirmed:
        examples = ", ".join(grouping.unconfirmed[:3])
        notes.append(
            f"{len(grouping.unconfirmed)} scope(s) hold gamma/beta without moving statistics under names that do "
            f"not say batch norm ({examples}{', ...' if len(grouping.unconfirmed) > 3 else ''}); "
            "they may be BN layers that use batch statistics only, or another normalisation: not checked"
        )
    return grouping.layers, notes


def _report(
    model: ModelFile,
    layers: list[BNLayer],
    findings: list[Finding] | None = None,
    notes: list[str] | None = None,
    errors: list[str] | None = None,
    statements: list[Statement] | None = None,
) -> Report:
    return Report(
        model.path,
        model.format,
        model.step,
        layers,
        findings or [],
        notes or [],
        errors or [],
        model.main_file,
        model.framework,
        statements or [],
    )


def model_wide(findings: list[Finding], layers: Sequence[BNLayer]) -> list[Statement]:
    """The rules that fired on every one of ``layers`` (two or more) and say what that means."""
    by_code: dict[str, list[Finding]] = {}
    for finding in findings:
        by_code.setdefault(finding.code, []).append(finding)
    names = {layer.name for layer in layers}
    statements = []
    for code, fired in by_code.items():
        rule = RULES[code]
        if len(names) >= 2 and {f.layer for f in fired} >= names and rule.states(fired):
            statements.append(Statement(code, rule.severity, len(names), rule.model_wide))
    return sorted(statements, key=lambda statement: statement.code)


def _not_before_every_layer() -> str | None:
    raise RuntimeError("a rule that asks context.training_evidence must need Needs.SUMMARIES")


def chunks(layers: list[BNLayer]) -> Iterator[list[BNLayer]]:
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


def _load(layers: Sequence[BNLayer], path: str, errors: list[str]) -> list[BNLayer]:
    """:func:`load_values`, its errors collected in ``errors`` (the report's, in the order they occur)."""
    loaded, failed = load_values(layers, path)
    errors.extend(failed)
    return loaded


def load_values(layers: Sequence[BNLayer], path: str) -> tuple[list[BNLayer], list[str]]:
    """``layers`` (of the model at ``path``) with their values loaded and summarised, and the errors: a layer
    whose values cannot be read is returned unreadable, saying why."""
    load = _loader([variable for layer in layers for variable in layer.variables.values()])
    read: list[tuple[BNLayer, dict[str, np.ndarray] | str]] = []
    errors = []
    for layer in layers:
        values: dict[str, np.ndarray] | str = {}
        for role, variable in layer.variables.items():
            try:
                value = load(variable)
                if value.dtype.kind not in "iuf":
                    what = f"BN variable '{variable.name}' holds {value.dtype} data, not numbers"
                    raise FormatError(f"{path}: {what}")
                values[role] = value
            except BncheckError as exc:
                values = str(exc)
                errors.append(values)
                break
        read.append((layer, values))
    stats = iter(summarise([value for _, values in read if not isinstance(values, str) for value in values.values()]))
    result = []
    for layer, values in read:
        if isinstance(values, str):
            result.append(layer.failed(values))
            continue
        mean, variance = values.get("moving_mean"), values.get("moving_variance")
        moving = digest([mean, variance]) if mean is not None and variance is not None else None
        result.append(layer.loaded(values, {role: next(stats) for role in values}, moving))
    return result, errors


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


def _training_evidence(step: int | None, model: ModelFile, layers: list[BNLayer]) -> str | None:
    """Why we believe the model was trained at all: a step count, or gamma/beta that moved in some layer."""
    if step and model.step is not None:
        return f"{model.step.source} = {step}"
    counted = [layer.hints.batches_tracked for layer in layers if layer.hints.batches_tracked]
    if counted:
        return f"num_batches_tracked up to {max(counted)} in {len(counted)} BN layer(s)"
    moved = [layer.name for layer in layers if any(layer.at_initial(role) is False for role in ("gamma", "beta"))]
    if moved:  # (at_initial is False for NaN too: a NaN moved)
        return f"gamma/beta moved in {len(moved)} other layer(s), e.g. {moved[0]}"
    return None
