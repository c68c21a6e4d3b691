"""What a training graph says about one BN layer: the graph findings and the cause of a symptom.

Pure functions over :class:`GraphFacts` (no I/O). The graph rules (BN101-BN105) report
these diagnoses; the value rules BN001/BN002 quote them as the cause of what the values
show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..facts import GraphFacts, GraphVariable
from ..layers import BNLayer

STATS = ("moving_mean", "moving_variance")
UPDATE_RULES = ("BN101", "BN102", "BN103")  # need a training graph (a train op)


@dataclass(frozen=True)
class Diagnosis:
    code: str
    message: str  # the graph finding
    cause: str  # the same fact, phrased as the cause of a symptom (BN001/BN002)


def graph_stats(layer: BNLayer, graph: GraphFacts) -> dict[str, GraphVariable]:
    """The layer's moving statistics as the graph knows them (also those the checkpoint lacks)."""
    found = {}
    for role in STATS:
        variable = layer.get(role)
        names = (variable.key, variable.name) if variable is not None else (f"{layer.name}/{role}",)
        for name in names:
            if name in graph.variables:
                found[role] = graph.variables[name]
                break
    return found


def _op(names: tuple[str, ...]) -> str:
    """The first update op, cut after its AssignMovingAvg scope, and how many more there are."""
    first = re.sub(r"((^|/)(AssignMovingAvg|AssignNewValue)[^/]*)/.*$", r"\1", names[0])
    return f"`{first}`" + (f" (+{len(names) - 1} more)" if len(names) > 1 else "")


def diagnose(layer: BNLayer, graph: GraphFacts | None) -> list[Diagnosis]:
    """Every graph finding for ``layer``, in code order."""
    if graph is None:
        return []
    stats = graph_stats(layer, graph)
    if not stats:
        return []
    found: list[Diagnosis] = []
    train = f"`{graph.train_ops[0]}`" if graph.train_ops else ""
    if graph.train_ops:
        without = [role for role, v in stats.items() if not v.update_ops]
        if without:
            found.append(
                Diagnosis(
                    "BN101",
                    f"the training graph has no moving-average update op for {' or '.join(without)}: the layer was "
                    "built in inference mode (training=False, or the learning phase 0 when it was built)",
                    "the training graph has no update ops for this layer (built with training=False or learning "
                    "phase 0); build it with training=True while training",
                ),
            )
        idle = {role: v for role, v in stats.items() if v.update_ops and not v.updates_run}
        if idle:
            ops = tuple(op for v in idle.values() for op in v.update_ops)
            collected = any(v.updates_collected for v in idle.values())
            if collected:
                why = "they are in UPDATE_OPS, but the train op was not built under control_dependencies(UPDATE_OPS)"
                cause = (
                    f"train op {train} does not depend on {_op(ops)}; wrap `minimize` in "
                    "`tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))`"
                )
            else:
                why = "they are not in UPDATE_OPS either (BN103)"
                cause = (
                    f"update ops {_op(ops)} are not in UPDATE_OPS and train op {train} depends on none of them (a "
                    "tf.keras layer in a TF1 graph); add `model.updates` to the control dependencies of the train op"
                )
            found.append(Diagnosis("BN102", f"train op {train} does not depend on {_op(ops)}: {why}", cause))
            if not collected:
                found.append(
                    Diagnosis(
                        "BN103",
                        f"update ops {_op(ops)} are not in UPDATE_OPS (a tf.keras layer in a TF1 graph keeps them "
                        "in layer.updates) and nothing runs them",
                        cause,
                    )
                )
    unsaved = [role for role, v in stats.items() if v.saved is False]
    if unsaved:
        found.append(
            Diagnosis(
                "BN104",
                f"the graph's Saver ({graph.saver}) does not save {' and '.join(unsaved)}",
                f"the graph's Saver ({graph.saver}) does not save them (Saver(var_list=tf.trainable_variables())?); "
                "save with tf.compat.v1.train.Saver() or Saver(tf.global_variables())",
            )
        )
    trainable = [role for role, v in stats.items() if v.trainable]
    if trainable:
        found.append(
            Diagnosis(
                "BN105",
                f"{' and '.join(trainable)} in the trainable_variables collection: an optimizer trains them by "
                "gradient",
                f"{' and '.join(trainable)} are in trainable_variables",
            )
        )
    return found


def cause_of_stale_stats(layer: BNLayer, graph: GraphFacts | None) -> str | None:
    """Why the graph says the moving statistics never moved (BN002), or None when it does not say."""
    for diagnosis in diagnose(layer, graph):
        if diagnosis.code in UPDATE_RULES:
            return f"cause: {diagnosis.cause}"
    if graph is None:
        return None
    stats = graph_stats(layer, graph).values()
    placeholders = {v.decay_placeholder for v in stats if v.updates_run and v.decay_placeholder}
    if placeholders:
        name = sorted(placeholders)[0]
        return (
            f"likely cause: the update ops run, but their momentum depends on `{name}`, a placeholder that "
            "defaults to False (inference): unless it is fed True while training, every update keeps the "
            "statistics as they are; call K.set_learning_phase(1) before building the model, or feed it"
        )
    return None


def cause_of_missing_stats(layer: BNLayer, graph: GraphFacts | None) -> str | None:
    """Why the graph says the moving statistics are not in the checkpoint (BN001), or None."""
    for diagnosis in diagnose(layer, graph):
        if diagnosis.code == "BN104":
            return f"cause: {diagnosis.cause}"
    return None
