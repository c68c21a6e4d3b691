"""BN layers, training graphs and diffs built in code, and what one rule finds in them (the rule unit tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from bncheck.comparison import pair_layers
from bncheck.deltas import DiffReport
from bncheck.facts import Framework, GraphFacts, GraphVariable, LayerHints, Variable
from bncheck.findings import Finding
from bncheck.layers import BNLayer
from bncheck.report import Report
from bncheck.rules import RULES, Context, DiffContext, DiffRule, ModelRule, Needs
from bncheck.stats import digest, summarise
from bncheck.thresholds import Thresholds

# A trained, healthy layer of 4 channels: gamma/beta moved from 1/0, statistics far from 0/1.
GAMMA, BETA, MEAN, VAR = [1.1, 0.9, 1.2, 0.8], [0.1, -0.1, 0.2, -0.2], [0.5, -0.3, 0.2, 0.1], [0.8, 1.5, 2.0, 0.6]
ONES, ZEROS = [1.0] * 4, [0.0] * 4
VALUE_RULES = [code for code, rule in RULES.items() if rule.needs in (Needs.VALUES, Needs.SUMMARIES, Needs.MODEL)]


def _array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """float32, as frameworks save BN variables, unless already an array (of the dtype a test wants)."""
    return values if isinstance(values, np.ndarray) else np.asarray(values, dtype=np.float32)


def _variable(key: str, value: np.ndarray, read: Callable[[str], np.ndarray], slots: Iterable[str]) -> Variable:
    own = {slot: Variable(f"{key}/{slot}", f"{key}/{slot}", str(value.dtype), value.shape, read) for slot in slots}
    return Variable(key, key, str(value.dtype), value.shape, read, own)


def layer(
    name: str = "bn",
    *,
    gamma: Sequence[float] | np.ndarray | None = GAMMA,
    beta: Sequence[float] | np.ndarray | None = BETA,
    mean: Sequence[float] | np.ndarray | None = MEAN,
    var: Sequence[float] | np.ndarray | None = VAR,
    slots: dict[str, Iterable[str]] | None = None,  # role -> slot names (optimizer slots, EMA shadows)
    **hints: object,  # LayerHints fields: momentum, epsilon, trainable, training_mode, unmapped
) -> BNLayer:
    """A loaded BN layer (trained and healthy by default); a role given as None is not in the file."""
    given = {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": var}
    values = {role: _array(value) for role, value in given.items() if value is not None}
    read = {f"{name}/{role}": value for role, value in values.items()}.__getitem__
    variables = {
        role: _variable(f"{name}/{role}", value, read, (slots or {}).get(role, ())) for role, value in values.items()
    }
    stats = dict(zip(values, summarise(list(values.values())), strict=True))
    moving = [values[role] for role in ("moving_mean", "moving_variance") if role in values]
    return BNLayer(name, variables, LayerHints(**hints), values, stats, digest(moving) if len(moving) == 2 else None)


def fresh(name: str = "bn", **options: object) -> BNLayer:
    """A layer never trained: gamma 1, beta 0, moving_mean 0, moving_variance 1."""
    return layer(name, **{"gamma": ONES, "beta": ZEROS, "mean": ZEROS, "var": ONES, **options})


def graph(
    name: str = "bn",
    *,
    train_ops: tuple[str, ...] = ("train_op",),
    saver: str | None = "save/SaveV2",
    mean: dict[str, object] | None = None,
    var: dict[str, object] | None = None,
    **both: object,
) -> GraphFacts:
    """A training graph for layer ``name``, healthy by default (update ops collected and run by the train op,
    statistics saved, not trainable); ``both`` overrides GraphVariable fields of both statistics, ``mean`` and
    ``var`` of one."""
    variables = {}
    for role, op, own in (("moving_mean", "AssignMovingAvg", mean), ("moving_variance", "AssignMovingAvg_1", var)):
        fields = {
            "update_ops": (f"{name}/{op}/AssignSubVariableOp",),
            "updates_run": True,
            "updates_collected": True,
            "saved": True,
            **both,
            **(own or {}),
        }
        variables[f"{name}/{role}"] = GraphVariable(f"{name}/{role}", **fields)  # type: ignore[arg-type]
    return GraphFacts("model.meta", variables, train_ops, saver)


def diff(*pairs: tuple[BNLayer, BNLayer], only_a: Sequence[str] = (), only_b: Sequence[str] = (), **tolerance: float):
    """A DiffReport of the given (A, B) layer pairs; ``tolerance``: rtol, atol of pair_layers."""
    paired = [pair_layers(a, b, **tolerance) for a, b in pairs]
    return DiffReport(Report("a", "test"), Report("b", "test"), paired, list(only_a), list(only_b))


def run(
    code: str,
    subject: BNLayer | list[BNLayer] | DiffReport,
    *,
    step: int | None = None,
    graph: GraphFacts | None = None,
    framework: Framework | None = None,
    evidence: str | None = None,  # why the model is believed trained (context.training_evidence)
    frozen: tuple[str, ...] = (),  # diff: --frozen globs
    **thresholds: float,
) -> list[Finding]:
    """What rule ``code`` finds in ``subject`` (a layer, a model's layers or a diff)."""
    rule, limits = RULES[code], Thresholds(**thresholds)
    if isinstance(rule, DiffRule):
        assert isinstance(subject, DiffReport)
        return rule.run(subject, DiffContext(frozen, limits, framework))
    context = Context(step, limits, graph, framework, lambda: evidence)
    if isinstance(rule, ModelRule):
        return rule.run(subject if isinstance(subject, list) else [subject], context)  # type: ignore[arg-type]
    return rule.run(subject, context)  # type: ignore[arg-type]


def one(code: str, subject: BNLayer | list[BNLayer] | DiffReport, **context: object) -> Finding:
    """The single finding of rule ``code`` in ``subject`` (fails when there is none or more)."""
    found = run(code, subject, **context)  # type: ignore[arg-type]
    assert len(found) == 1, f"{code}: expected one finding, got {found}"
    assert found[0].code == code
    return found[0]


def fired(subject: BNLayer, **context: object) -> dict[str, list[Finding]]:
    """The findings of every value rule (BN001-BN013) on one layer, by code, those that fired only."""
    found = {code: run(code, subject, **context) for code in VALUE_RULES}  # type: ignore[arg-type]
    return {code: findings for code, findings in found.items() if findings}
