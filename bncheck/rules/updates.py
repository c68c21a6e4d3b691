"""Rules on whether training updated the moving statistics: BN002 never, BN003 nothing trained, BN006 barely.

They judge a layer only once every layer is summarised (``Needs.SUMMARIES``): a layer without gamma/beta
trained when the rest of the model did. A layer the file marks not trainable is judged as such
(:func:`judged_as_trained`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import wraps

from ..facts import Framework
from ..findings import Severity
from ..layers import INITIAL, BNLayer
from ..stats import largest_magnitude
from .causes import cause_of_stale_stats
from .rule import Context, Hit, LayerRule, Needs

LayerCheck = Callable[[BNLayer, Context], Iterable[Hit]]


def _trained_evidence(layer: BNLayer) -> str | None:
    """How far gamma/beta moved from 1/0, in words; None when they did not (or are absent)."""
    moved = []
    for role, label in (("gamma", "|gamma - 1|"), ("beta", "|beta|")):
        stats = layer.stats.get(role)
        if stats is not None and not layer.at_initial(role):
            parts = [f"max {label} = {largest_magnitude(stats, INITIAL[role]):.3g}"] if stats.min is not None else []
            parts += [f"{stats.nonfinite} {role} values not finite"] if stats.nonfinite else []
            moved.append(" and ".join(parts))
    return ", ".join(moved) if moved else None


def _momentum(layer: BNLayer, context: Context) -> tuple[float, str]:
    if layer.hints.momentum is not None:
        return layer.hints.momentum, "the layer's own" if context.live else "recorded in the file"
    momentum, named = context.default_momentum
    return momentum, f"{named}; the file does not record it"


def _counted(layer: BNLayer) -> str:
    """What PyTorch's num_batches_tracked says about statistics still at 0/1, or nothing."""
    counted = layer.hints.batches_tracked
    if counted is None:
        return ""
    if counted == 0:
        return " — num_batches_tracked = 0: the layer never ran in train mode"
    return (
        f" — num_batches_tracked = {counted}: it ran in train mode, yet its statistics kept nothing of the batches "
        "(momentum=0?)"
    )


FROZEN = "frozen layer (trainable=False): training does not update it, so this is expected if its values were loaded"


def judged_as_trained(check: LayerCheck, keep_own_evidence: bool = False) -> LayerCheck:
    """``check``, with the policy of the rules that assume the layer was trained (BN002, BN003, BN006) on a
    layer that is not trainable.

    A layer the file marks not trainable (Keras ``trainable=False``) is not updated by the
    training the file records: its findings are reported as info, without the step-count
    estimate, saying it is frozen. Exception (``keep_own_evidence``): BN002 on a frozen layer
    whose own gamma/beta moved stays an error, since they moved before the layer was
    frozen, when its statistics should have moved too.
    """

    @wraps(check)  # its docstring stays the rule's documentation
    def judged(layer: BNLayer, context: Context) -> Iterator[Hit]:
        if layer.hints.trainable:
            yield from check(layer, context)
            return
        own = keep_own_evidence and _trained_evidence(layer) is not None
        for hit in check(layer, replace(context, step=None)):
            if own:
                yield hit[0], f"{hit[1]} — the layer is frozen, but its gamma/beta trained before it was frozen"
            else:
                yield hit[0], f"{hit[1]} — {FROZEN}", Severity.INFO

    return judged


def stats_never_updated(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """moving_mean is exactly 0 and moving_variance exactly 1 in every channel, although
    training happened (the layer's gamma/beta moved from 1/0, or, for a layer without
    them, the rest of the model trained).

    Why it matters: the moving statistics are what inference normalises with. Still at
    their initial values, they mean the update ops never ran: the model works in
    training mode and fails in inference mode.

    Fix: TF1: wrap the train op, ``with tf.control_dependencies(
    tf.get_collection(tf.GraphKeys.UPDATE_OPS)): train_op = opt.minimize(loss)``, and
    build the layers with ``training=True`` (a placeholder) during training. tf.keras
    layers in a TF1 graph do not fill UPDATE_OPS: add ``model.updates`` (or
    ``layer.updates``) to the control dependencies. Keras: do not call
    ``K.set_learning_phase(0)`` before building the model; a custom ``train_step`` must call
    ``self(x, training=True)``. TF2: call the model with ``model(x, training=True)`` inside
    the custom training loop (``tf.GradientTape``), pass ``training`` on from a subclassed
    model's ``call()`` to its BN layers, and do not set ``trainable=False`` on a BN layer that
    should learn (Keras then runs it in inference mode). PyTorch: call ``model.train()``
    before the training loop (an evaluation inside it calls ``model.eval()``: switch back),
    with ``momentum`` > 0; ``num_batches_tracked`` = 0 says the layer never ran in train mode,
    a count above 0 with statistics at 0/1 says ``momentum=0``. ONNX (a PyTorch export): the source
    model trained in ``eval()`` mode, with ``momentum=0`` or ``track_running_stats=False``:
    train it with ``model.train()``.

    The fix printed with a finding is the one for the framework that wrote the file; the
    list below gives every spelling.

    With the training graph (``.meta``), the message names the cause the graph shows: no
    update ops (BN101), update ops no train op runs (BN102), not in UPDATE_OPS (BN103), or
    update ops whose momentum depends on an unfed ``keras_learning_phase``.

    Frozen layers (``trainable=False`` in a Keras config): reported as info, saying so;
    still an error when the layer's own gamma/beta moved (they trained before the freeze,
    the statistics did not).

    Silence: ``--ignore BN002``.
    """
    if not layer.statistics_at_initial():
        return
    own = _trained_evidence(layer)
    cause = cause_of_stale_stats(layer, context.graph)
    because = (f" — {cause}" if cause else "") + _counted(layer)
    if own:
        yield layer.name, f"moving_mean all 0 and moving_variance all 1, yet gamma/beta trained ({own}){because}"
    elif not ({"gamma", "beta"} & layer.stats.keys()) and (trained := context.training_evidence):
        yield layer.name, f"moving_mean all 0 and moving_variance all 1, yet the model trained ({trained}){because}"


BN002 = LayerRule(
    code="BN002",
    name="stats-never-updated",
    severity=Severity.ERROR,
    summary="moving statistics exactly 0/1 while the model trained",
    fix="make the BN update ops run while training (BN called in training mode, nothing skipping the updates)",
    needs=Needs.SUMMARIES,
    fixes={
        Framework.TF1: "run the BN update ops with the train op: minimize under "
        "control_dependencies(UPDATE_OPS) (tf.keras layers: model.updates), layers built with training=True",
        Framework.TF2: "call the model with training=True in the training step (GradientTape loop), pass `training` "
        "on in a subclassed call(), and keep BN layers trainable while training",
        Framework.KERAS: "train in training mode: model.fit does; a custom train_step must call "
        "self(x, training=True), a subclassed call() pass `training` on; tf.keras: no "
        "K.set_learning_phase(0) before building",
        Framework.ONNX: "train the source model in training mode before export (PyTorch: model.train(), momentum > 0, "
        "track_running_stats=True)",
        Framework.TORCH: "call model.train() before the training loop (model.eval() only for evaluation, then "
        "model.train() again); BN momentum > 0",
    },
    model_wide="the moving statistics of every BN layer are exactly 0/1 while the model trained: "
    "no training step ran BN in training mode",
    check=judged_as_trained(stats_never_updated, keep_own_evidence=True),
)


def layer_untrained(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """gamma = 1, beta = 0, moving_mean = 0 and moving_variance = 1 everywhere: the layer
    (or the whole model) was saved before any training touched it.

    Why it matters: a checkpoint written before training, or a layer that no training
    step reaches (a branch never used), ships an identity normalisation.

    Fix: make sure the checkpoint is the one written after training (TF1: the right
    ``global_step``; Keras: the ``ModelCheckpoint`` of the last or best epoch), and that
    the layer is part of the trained path.

    Frozen layers (``trainable=False`` in a Keras config): reported as info, saying so (a frozen fresh layer is an
    identity normalisation: fine only if intended).

    Silence: ``--ignore BN003``.
    """
    if not layer.statistics_at_initial() or _trained_evidence(layer):
        return
    if not ({"gamma", "beta"} & layer.stats.keys()) and context.training_evidence:
        return  # BN002's case: the model trained around it
    scope = (
        f"the model trained ({context.training_evidence}) but not this layer"
        if context.training_evidence
        else "the whole model looks untrained"
    )
    yield layer.name, f"gamma, beta, moving_mean and moving_variance all at their initial values; {scope}"


BN003 = LayerRule(
    code="BN003",
    name="layer-untrained",
    severity=Severity.WARNING,
    summary="every BN variable still at its initial value",
    fix="check that this layer (or model) was trained before it was saved",
    needs=Needs.SUMMARIES,
    model_wide="every BN layer is still at its initial values: the whole model looks untrained (saved before "
    "training, or the wrong checkpoint)",
    model_wide_when="the whole model looks untrained",
    check=judged_as_trained(layer_untrained),
)


def stats_barely_updated(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """The moving statistics moved, but not far: every channel is within
    ``barely_tolerance`` (0.01) of 0/1 while gamma/beta trained. With momentum m after n
    update steps a share m**n of the initial 0/1 remains; when the file records both and
    m**n is above ``barely_remaining`` (0.25), most of 0/1 is expected to remain and the
    tolerance is ten times wider. Statistics far from 0/1 never fire, whatever m**n says
    (a fine-tune restarts the step count on statistics warmed up long before).

    Why it matters: statistics that are mostly their initial values make inference
    normalise with numbers that are not the data's: accuracy drops between training and
    inference although nothing is "broken".

    Fix: train for more steps, or lower the momentum so the average warms up faster
    (TF1: ``tf.layers.batch_normalization(momentum=0.9)``; Keras/TF2:
    ``BatchNormalization(momentum=0.9)``), or re-estimate the statistics with a pass over
    training data in training mode before export.

    PyTorch: ``num_batches_tracked`` counts the updates exactly, so the share of 0/1 left is
    known, whatever the values look like: with PyTorch's convention (``momentum=0.1`` is the
    weight of each new batch) ``(1 - momentum)**n`` of the initial values remains, 73% after
    3 batches, and the rule fires while that is above ``barely_remaining``. The momentum assumed
    is the default 0.1 unless the file records its own (a pickled module does); a layer built
    with ``momentum=None`` averages cumulatively and keeps nothing of 0/1 after its first batch:
    ``--ignore BN006`` for it.

    Frozen layers (``trainable=False`` in a Keras config, FrozenBatchNorm2d in a pickled module):
    reported as info, saying so, and the step-count estimate is not used (the steps did not
    update a frozen layer).

    During training (the guards of ``bncheck.keras`` and ``bncheck.torch``): judged only once the steps taken
    predict that less than ``barely_remaining`` of 0/1 remains, and then with the plain tolerance, so a healthy
    run is never flagged early; PyTorch's counter then says whether the layer took far fewer updates than steps.

    Silence: ``--ignore BN006``; the thresholds are settings.
    """
    mean, variance = layer.stats.get("moving_mean"), layer.stats.get("moving_variance")
    if mean is None or variance is None or mean.nonfinite or variance.nonfinite or layer.statistics_at_initial():
        return
    limits = context.thresholds
    if context.live and not _converged_by_now(layer, context):
        return  # still training, and its steps do not yet predict statistics far from 0/1: not yet judged
    if layer.hints.batches_tracked is not None:  # PyTorch counts the updates: the share left of 0/1 is known
        yield from _barely_counted(layer, context)
        return
    close = max(largest_magnitude(mean), largest_magnitude(variance, 1.0))
    if close > limits.barely_tolerance * 10:
        return  # far from 0/1 (most layers); the tolerance below is this or a tenth of it
    momentum, source = _momentum(layer, context)
    steps = context.step
    remaining = _remaining(momentum, steps)
    # m**n says how much of 0/1 should remain; the values themselves must agree before anything is claimed
    expected_close = (
        not context.live
        and layer.hints.momentum is not None
        and remaining is not None
        and remaining > limits.barely_remaining
    )
    tolerance = limits.barely_tolerance * (10 if expected_close else 1)
    if close > tolerance:
        return
    if _trained_evidence(layer):
        trained = "gamma/beta trained"
    elif not ({"gamma", "beta"} & layer.stats.keys()) and (evidence := context.training_evidence):
        trained = f"the model trained ({evidence})"
    else:
        return
    estimate = (
        f"; after {steps} steps with momentum {momentum:g} ({source}) {remaining:.0%} of it would remain"
        if remaining is not None
        else ""
    )
    yield layer.name, f"moving statistics within {close:.2g} of their initial 0/1 while {trained}{estimate}"


def _converged_by_now(layer: BNLayer, context: Context) -> bool:
    """Whether the steps a model still training has taken predict statistics mostly away from their initial 0/1
    (m**n at most ``barely_remaining``): only then can a guard say that they moved too little."""
    remaining = _remaining(_momentum(layer, context)[0], context.step)
    return remaining is not None and remaining <= context.thresholds.barely_remaining


def _remaining(momentum: float, updates: int | None) -> float | None:
    """The share of the initial 0/1 left after ``updates`` moving-average updates (None for no count, or one a
    damaged file gives: negative, or a momentum outside [0, 1])."""
    if not updates or updates < 0 or not 0 <= momentum <= 1:
        return None
    return momentum**updates


def _barely_counted(layer: BNLayer, context: Context) -> Iterator[Hit]:
    counted = layer.hints.batches_tracked or 0
    momentum, source = _momentum(layer, context)
    remaining = _remaining(momentum, counted)
    if remaining is not None and remaining > context.thresholds.barely_remaining:
        yield (
            layer.name,
            f"num_batches_tracked = {counted}: with momentum={1 - momentum:g} ({source}) {remaining:.0%} of the "
            "initial 0/1 remains in the moving statistics",
        )


BN006 = LayerRule(
    code="BN006",
    name="stats-barely-updated",
    severity=Severity.WARNING,
    summary="moving statistics still close to their initial 0/1",
    fix="train longer or lower the momentum (e.g. 0.9) so the moving averages converge",
    needs=Needs.SUMMARIES,
    fixes={
        Framework.TF1: "train longer, or tf.compat.v1.layers.batch_normalization(momentum=0.9) so the moving "
        "averages converge faster",
        Framework.TF2: "train longer, or BatchNormalization(momentum=0.9) so the moving averages converge faster",
        Framework.KERAS: "train longer, or BatchNormalization(momentum=0.9) so the moving averages converge faster",
        Framework.ONNX: "train longer, or raise the source model's BN momentum (PyTorch: the weight of each new "
        "batch, 0.1 by default)",
        Framework.TORCH: "train longer, or raise BatchNorm's momentum (the weight of each new batch, 0.1 by default), "
        "or momentum=None for a cumulative average",
    },
    model_wide="the moving statistics of every BN layer are still close to 0/1: too few steps for the momentum",
    check=judged_as_trained(stats_barely_updated),
)
