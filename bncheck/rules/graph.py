"""Graph rules BN101-BN105: they need the training graph (``.meta`` or a TF1 SavedModel tagged "train")."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..layers import BNLayer
from ..naming import EMA_SLOTS
from .causes import STATS, UPDATE_RULES, diagnose, graph_stats
from .rule import Context, Hit, LayerRule, Needs

MOVED = (
    "yet the saved statistics are not 0/1: they were updated some other way (the update ops run on their own, or "
    "the checkpoint comes from another graph), or they are the statistics this training started from (a fine-tune) "
    "and it did not update them"
)


MOVED_SEVERITY = {"BN101": Severity.WARNING, "BN102": Severity.WARNING, "BN103": Severity.INFO}  # a step down


def _hits(code: str, layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The graph's diagnosis ``code`` for the layer. The update-op findings (BN101-BN103) are a severity
    lower when the values contradict them: the statistics moved from 0/1 (and not by gradient), so this
    graph may not be how they were made."""
    for diagnosis in diagnose(layer, context.graph):
        if diagnosis.code != code:
            continue
        if code in UPDATE_RULES and _moved_not_by_gradient(layer, context):
            yield layer.name, f"{diagnosis.message} — {MOVED}", MOVED_SEVERITY[code]
        else:
            yield layer.name, diagnosis.message


def _moved_not_by_gradient(layer: BNLayer, context: Context) -> bool:
    """Both moving statistics were read and are not their initial 0/1, and no optimizer trained them
    (no optimizer slots on them, not in the graph's trainable variables)."""
    known = [layer.at_initial(role) for role in STATS]
    if None in known or all(known):
        return False
    trained = any(v.trainable for v in graph_stats(layer, context.graph).values()) if context.graph else False
    slots = any(
        not name.startswith(EMA_SLOTS)
        for role in STATS
        if role in layer.variables
        for name in layer.variables[role].slots
    )
    return not trained and not slots


def no_update_ops(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The training graph has no op that writes the layer's moving_mean or moving_variance
    (no ``AssignMovingAvg*``/``AssignNewValue*`` assign op, fused or not, in cond branches
    neither). Judged only in a training graph (one with a train op).

    Why it matters: the layer was built in inference mode, so nothing can ever update its
    statistics; they stay 0/1 (BN002) or, if trained by gradient, are not statistics at all.

    Fix: TF1: ``tf.compat.v1.layers.batch_normalization(x, training=is_training)`` with
    a placeholder or Python bool that is True while training (the default is False).
    tf.keras in a TF1 graph: do not call ``K.set_learning_phase(0)`` before the layers are
    built, and call the layer with ``training=True`` (or the learning phase) while
    training. TF2: call the model with ``model(x, training=True)`` in the training step
    (there is no graph file to check in TF2; BN002 catches the result).

    When the checkpoint beside the graph holds statistics that moved from 0/1 all the same (and
    not by gradient), the finding is one severity lower: they were updated some other way, or
    they are the statistics a fine-tune started from, which this training did not update.

    Silence: ``--ignore BN101`` (e.g. a deliberately frozen BN layer in a fine-tuning graph).
    """
    yield from _hits("BN101", layer, context)


BN101 = LayerRule(
    code="BN101",
    name="no-update-ops",
    severity=Severity.ERROR,
    summary="the training graph has no moving-average update ops for the layer",
    fix="build the layer in training mode while training (training=True; no set_learning_phase(0) before building)",
    needs=Needs.GRAPH,
    model_wide="the training graph has no update ops for any BN layer: the model was built in inference mode",
    check=no_update_ops,
)


def update_ops_not_run(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The layer's moving-average update ops exist, but nothing the graph marks as a train
    op (the ``train_op`` collection, the optimizer's apply ops and what groups them)
    reaches them through data or control inputs. Updates made reachable another way
    (slim's ``updates_collections=None``, an explicit ``tf.group``) count as run.

    Why it matters: ``session.run(train_op)`` runs only what the train op depends on; the
    update ops never execute and the statistics stay 0/1 (BN002).

    Fix: TF1: ``update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)``
    then ``with tf.control_dependencies(update_ops): train_op = opt.minimize(loss)``
    (or ``train_op = tf.group(opt.minimize(loss), *update_ops)``); slim:
    ``slim.learning.create_train_op`` does it, or ``batch_norm(updates_collections=None)``.
    tf.keras layers in a TF1 graph: put ``model.updates`` (or ``layer.updates``) in those
    control dependencies. TF2: no graph-level wiring; call the model with
    ``training=True``.

    When the checkpoint beside the graph holds statistics that moved from 0/1 all the same (and
    not by gradient), the finding is one severity lower: they were updated some other way, or
    they are the statistics a fine-tune started from, which this training did not update.

    Silence: ``--ignore BN102``.
    """
    yield from _hits("BN102", layer, context)


BN102 = LayerRule(
    code="BN102",
    name="update-ops-not-run",
    severity=Severity.ERROR,
    summary="update ops exist but no train op depends on them",
    fix="make the train op depend on the update ops (control_dependencies(UPDATE_OPS) around minimize)",
    needs=Needs.GRAPH,
    model_wide="no train op runs the update ops of any BN layer: the train op was built without depending on them",
    check=update_ops_not_run,
)


def update_ops_not_collected(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The layer's update ops are not in the ``UPDATE_OPS`` collection, and no train op
    runs them. This is what a ``tf.keras.layers.BatchNormalization`` used in a TF1 graph
    does: it keeps its updates in ``layer.updates``, so the classic
    ``control_dependencies(get_collection(UPDATE_OPS))`` wraps nothing. Update ops that are
    not collected but run anyway (slim ``updates_collections=None``) are fine and silent.

    Why it matters: it is the reason behind BN102 in such graphs, and the fix differs from
    the plain missing control dependency.

    Fix: TF1 with tf.keras layers: ``with tf.control_dependencies(model.updates):
    train_op = opt.minimize(loss)`` (or collect them yourself:
    ``tf.compat.v1.add_to_collection(UPDATE_OPS, op)`` for each op in ``layer.updates``).
    tf.compat.v1.layers: its layers do fill UPDATE_OPS. TF2 / Keras ``fit``: nothing to
    wire; Keras runs the updates itself.

    When the checkpoint beside the graph holds statistics that moved from 0/1 all the same (and
    not by gradient), the finding is one severity lower: they were updated some other way, or
    they are the statistics a fine-tune started from, which this training did not update.

    Silence: ``--ignore BN103``.
    """
    yield from _hits("BN103", layer, context)


BN103 = LayerRule(
    code="BN103",
    name="update-ops-not-collected",
    severity=Severity.WARNING,
    summary="update ops neither in UPDATE_OPS nor run (tf.keras layer in a TF1 graph)",
    fix="add the layer's updates (model.updates / layer.updates) to the train op's control dependencies",
    needs=Needs.GRAPH,
    model_wide="the update ops of no BN layer are in UPDATE_OPS and nothing runs them (tf.keras layers in a TF1 graph)",
    check=update_ops_not_collected,
)


def saver_drops_stats(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The graph's Saver (``save/SaveV2``, or ``<scope>/save/SaveV2`` as named by its
    ``saver_def``) lists the tensors it writes in a constant; the layer's moving_mean or
    moving_variance is not among them.

    Why it matters: the checkpoint will lack the statistics (BN001); restored, they are
    re-initialised to 0/1 and inference normalises with nothing.

    Fix: TF1: ``tf.compat.v1.train.Saver()`` (all saveable variables) or
    ``Saver(var_list=tf.compat.v1.global_variables())`` instead of
    ``Saver(var_list=tf.compat.v1.trainable_variables())``; to save less, add
    ``tf.compat.v1.get_collection(GraphKeys.MOVING_AVERAGE_VARIABLES)`` or the BN
    statistics explicitly. Keras: ``model.save_weights`` includes non-trainable weights.
    TF2: ``tf.train.Checkpoint(model=model)`` tracks every variable.

    Silence: ``--ignore BN104``.
    """
    yield from _hits("BN104", layer, context)


BN104 = LayerRule(
    code="BN104",
    name="saver-drops-stats",
    severity=Severity.ERROR,
    summary="the graph's Saver does not save the moving statistics",
    fix="save all variables: Saver() or Saver(tf.global_variables()), not Saver(tf.trainable_variables())",
    needs=Needs.GRAPH,
    model_wide="the graph's Saver saves the moving statistics of no BN layer (a Saver of the trainable variables?)",
    check=saver_drops_stats,
)


def stats_marked_trainable(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The layer's moving_mean or moving_variance is in the graph's
    ``trainable_variables`` collection.

    Why it matters: ``minimize`` trains every trainable variable by default, so the
    statistics become whatever lowers the loss instead of moving averages of the data
    (BN012 shows their optimizer slots in the checkpoint).

    Fix: TF1: create them with ``trainable=False`` (tf.compat.v1.layers does), do not
    ``add_to_collection(TRAINABLE_VARIABLES, ...)`` them, and pass
    ``var_list=tf.compat.v1.trainable_variables()`` without them. Keras: do not set the
    statistics' ``trainable`` in a custom layer. TF2: build the optimizer's variable list
    from ``model.trainable_variables``.

    Silence: ``--ignore BN105``.
    """
    yield from _hits("BN105", layer, context)


BN105 = LayerRule(
    code="BN105",
    name="stats-marked-trainable",
    severity=Severity.WARNING,
    summary="moving statistics are in the trainable_variables collection",
    fix="keep moving_mean/moving_variance out of TRAINABLE_VARIABLES and out of the optimizer's var_list",
    needs=Needs.GRAPH,
    check=stats_marked_trainable,
)
