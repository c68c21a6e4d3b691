"""Rules on what the file holds of each BN layer: BN001 missing statistics, BN009 copied statistics, BN011
inconsistent variables, BN012 statistics trained by an optimizer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..facts import Framework
from ..findings import Severity
from ..layers import ROLES, BNLayer
from ..naming import EMA_SLOTS
from .causes import cause_of_missing_stats
from .rule import Context, Hit, LayerRule, ModelRule


def missing_moving_stats(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The layer's gamma and/or beta are in the file but a moving statistic is not.

    Why it matters: moving_mean and moving_variance are not trainable, so a saver or
    export restricted to trainable variables drops them. On restore they come back as
    their initial 0 and 1 and inference normalises with statistics of nothing.

    Fix: TF1: ``tf.compat.v1.train.Saver()`` or ``Saver(var_list=tf.global_variables())``
    instead of ``Saver(var_list=tf.trainable_variables())``. Keras: save with
    ``model.save_weights`` / ``model.save`` (they include non-trainable weights), not a
    hand-made list of ``model.trainable_weights``. TF2: ``tf.train.Checkpoint(model=model)``
    tracks every variable; a custom ``var_list`` must include ``model.non_trainable_variables``.
    PyTorch: save ``model.state_dict()``, which holds the buffers ``running_mean`` and
    ``running_var``; ``dict(model.named_parameters())`` or a filter on ``requires_grad`` drops them.
    (A BN module built with ``track_running_stats=False`` has no statistics and cannot be told
    from weight/bias by keys: bncheck does not take it for a BN layer.)

    With the training graph (``.meta``), the message names the cause when the graph's
    Saver leaves the statistics out (BN104).

    Silence: ``--ignore BN001`` (e.g. a model that uses batch statistics at inference).
    """
    if not ({"gamma", "beta"} & layer.variables.keys()) or layer.hints.training_in:
        return  # (an inference graph that normalises with batch statistics needs none: BN013 says so)
    missing = [role for role in ("moving_mean", "moving_variance") if role not in layer.variables]
    if missing:
        present = "/".join(role for role in ("gamma", "beta") if role in layer.variables)
        cause = cause_of_missing_stats(layer, context.graph)
        yield (
            layer.name,
            f"{present} saved but {' and '.join(missing)} missing: restored, they would be 0/1"
            + (f" — {cause}" if cause else ""),
        )


BN001 = LayerRule(
    code="BN001",
    name="missing-moving-stats",
    severity=Severity.ERROR,
    summary="gamma/beta saved but moving_mean or moving_variance missing",
    fix="save every variable, not only the trainable ones: the moving statistics are not trainable",
    fixes={
        Framework.TF1: "save all variables: tf.compat.v1.train.Saver() or Saver(tf.global_variables()), "
        "not Saver(tf.trainable_variables())",
        Framework.TF2: "checkpoint the model itself (tf.train.Checkpoint(model=model)); a var_list of your own must "
        "include model.non_trainable_variables",
        Framework.KERAS: "save with model.save or model.save_weights (they include the non-trainable weights), not a "
        "list of model.trainable_weights",
        Framework.ONNX: "export the whole module with its buffers (running_mean, running_var), not only its parameters",
        Framework.TORCH: "save model.state_dict() (it holds the buffers running_mean/running_var), not "
        "dict(model.named_parameters())",
    },
    model_wide="no BN layer has its moving statistics in the file: only the trainable variables were saved",
    model_wide_when="moving_mean and moving_variance missing",
    check=missing_moving_stats,
)


def duplicate_stats(layers: Sequence[BNLayer], context: Context) -> Iterator[Hit]:
    """Two layers have bit-identical moving_mean and moving_variance that are not the
    initial 0/1.

    Why it matters: independent layers never end with identical statistics by chance.
    It means one layer's statistics were copied into another (an export or conversion
    bug) or one layer object is shared where two were meant.

    Fix: find where the weights were copied (a hand-written transfer of weights, a
    conversion script) or the layer that is reused; give each position its own layer
    (TF1, Keras and TF2 alike).

    Silence: ``--ignore BN009``.
    """
    seen: dict[bytes, str] = {}
    for layer in layers:
        mean = layer.stats.get("moving_mean")
        if layer.stats_digest is None or mean is None or mean.size < 2:
            continue
        first = seen.setdefault(layer.stats_digest, layer.name)  # even at 0/1: only layers at 0/1 match it, skipped
        if first != layer.name and not layer.statistics_at_initial():
            yield layer.name, f"moving statistics bit-identical to those of layer {first}"


BN009 = ModelRule(
    code="BN009",
    name="duplicate-stats",
    severity=Severity.WARNING,
    summary="two layers hold bit-identical, non-initial moving statistics",
    fix="check for a shared layer or a copy-paste in the export; each layer needs its own statistics",
    check=duplicate_stats,
)


def inconsistent_layer(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """gamma, beta, moving_mean and moving_variance of one layer do not share one shape
    and one dtype.

    Why it matters: the layer cannot be computed as saved: restoring fails, or worse,
    a converter broadcasts silently. It happens when checkpoints of two models are
    merged, or a variable was replaced by hand.

    Fix: re-export from a single model (TF1: one Saver over one graph; Keras:
    ``model.save``; TF2: ``tf.train.Checkpoint(model=model)``).

    Silence: ``--ignore BN011``.
    """
    present = {role: layer.variables[role] for role in ROLES if role in layer.variables}
    shapes = {role: v.shape for role, v in present.items()}
    dtypes = {role: v.dtype for role, v in present.items()}
    if len(set(shapes.values())) > 1:
        yield layer.name, "shapes differ: " + ", ".join(f"{r} {list(s)}" for r, s in shapes.items())
    if len(set(dtypes.values())) > 1:
        yield layer.name, "dtypes differ: " + ", ".join(f"{r} {d}" for r, d in dtypes.items())


BN011 = LayerRule(
    code="BN011",
    name="inconsistent-layer",
    severity=Severity.ERROR,
    summary="the variables of one BN layer disagree in shape or dtype",
    fix="the file mixes variables of different layers or models; re-export it from one model",
    check=inconsistent_layer,
)


def stats_have_slots(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """moving_mean or moving_variance has optimizer slots (``moving_mean/Adam``,
    ``.OPTIMIZER_SLOT/...``): an optimizer treated them as trainable weights.

    Why it matters: the moving statistics must be moving averages of batch statistics.
    Trained by gradient, they become whatever minimises the training loss in inference
    mode, which is not the data's mean and variance.

    Fix: TF1: pass ``var_list=tf.trainable_variables()`` (the default) to ``minimize``
    and do not add the statistics to TRAINABLE_VARIABLES. Keras: do not make the
    statistics trainable in a custom layer. TF2: build the optimizer's variable list
    from ``model.trainable_variables``.

    Silence: ``--ignore BN012``.
    """
    found = []
    for role in ("moving_mean", "moving_variance"):
        variable = layer.get(role)
        if variable is not None:
            slots = [name for name in variable.slots if not name.startswith(EMA_SLOTS)]
            if slots:
                found.append(f"{role}: {', '.join(sorted(slots))}")
    if found:
        yield layer.name, "optimizer slots on moving statistics (" + "; ".join(found) + ")"


BN012 = LayerRule(
    code="BN012",
    name="stats-have-optimizer-slots",
    severity=Severity.WARNING,
    summary="moving statistics carry optimizer slots: they were trained by gradient",
    fix="keep moving_mean/moving_variance out of the optimizer's variables",
    fixes={
        Framework.TF1: "keep moving_mean/moving_variance out of the optimizer's var_list and out of "
        "TRAINABLE_VARIABLES",
        Framework.TF2: "apply gradients to model.trainable_variables only",
        Framework.KERAS: "do not make the moving statistics trainable (custom layers: add_weight(trainable=False))",
        Framework.TORCH: "keep running_mean/running_var buffers (register_buffer), not nn.Parameter",
    },
    check=stats_have_slots,
)
