"""Value rules BN001-BN013: they need only the saved values (and the recorded mode) of the BN layers.

Most layers are healthy: a rule first asks the layer's Stats (min, max, non-finite count)
whether it could fire, and looks at the values only when it could.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import wraps

import numpy as np

from ..model import ROLES, BNLayer, Framework, Severity, Stats
from . import Context, Hit, per_layer, rule
from .causes import cause_of_missing_stats, cause_of_stale_stats

INITIAL = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}
EMA_SLOTS = ("ExponentialMovingAverage",)


def at_initial(layer: BNLayer, role: str) -> bool | None:
    """Whether every element of ``role`` is exactly its initial value (None: not loaded)."""
    stats = layer.stats.get(role)
    if stats is None:
        return None
    return not stats.nonfinite and (not stats.size or stats.min == stats.max == INITIAL[role])


def _largest_magnitude(stats: Stats, around: float = 0.0) -> float:
    """max |x - around| over the finite elements (0 if none)."""
    if stats.min is None or stats.max is None:
        return 0.0
    return max(abs(stats.min - around), abs(stats.max - around))


def _stats_at_initial(layer: BNLayer) -> bool:
    return bool(at_initial(layer, "moving_mean") and at_initial(layer, "moving_variance"))


def _trained_evidence(layer: BNLayer) -> str | None:
    """How far gamma/beta moved from 1/0, in words; None when they did not (or are absent)."""
    moved = []
    for role, label in (("gamma", "|gamma - 1|"), ("beta", "|beta|")):
        stats = layer.stats.get(role)
        if stats is not None and not at_initial(layer, role):
            parts = [f"max {label} = {_largest_magnitude(stats, INITIAL[role]):.3g}"] if stats.min is not None else []
            parts += [f"{stats.nonfinite} {role} values not finite"] if stats.nonfinite else []
            moved.append(" and ".join(parts))
    return ", ".join(moved) if moved else None


def _momentum(layer: BNLayer, context: Context) -> tuple[float, str]:
    if layer.hints.momentum is not None:
        return layer.hints.momentum, "recorded in the file"
    return context.thresholds.default_momentum, "framework default; the file does not record it"


def _f64(layer: BNLayer, role: str) -> np.ndarray | None:
    value = layer.values.get(role)
    return None if value is None else value.astype(np.float64).ravel()


FROZEN = "frozen layer (trainable=False): training does not update it, so this is expected if its values were loaded"


def _frozen_aware(keep_own_evidence: bool = False) -> Callable:
    """The frozen-layer policy of the rules that assume the layer was trained (BN002, BN003, BN006).

    A layer the file marks frozen (Keras ``trainable=False``) is not updated by the
    training the file records: its findings are reported as info, without the step-count
    estimate, saying it is frozen. Exception (``keep_own_evidence``): BN002 on a frozen layer
    whose own gamma/beta moved stays an error, since they moved before the layer was
    frozen, when its statistics should have moved too.
    """

    def decorate(check: Callable[[BNLayer, Context], Iterator[Hit]]) -> Callable:
        @wraps(check)
        def run(layer: BNLayer, context: Context) -> Iterator[Hit]:
            if not layer.hints.frozen:
                yield from check(layer, context)
                return
            own = keep_own_evidence and _trained_evidence(layer) is not None
            for hit in check(layer, replace(context, step=None)):
                if own:
                    yield hit[0], f"{hit[1]} — the layer is frozen, but its gamma/beta trained before it was frozen"
                else:
                    yield hit[0], f"{hit[1]} — {FROZEN}", Severity.INFO

        return run

    return decorate


@rule(
    "BN001",
    "missing-moving-stats",
    Severity.ERROR,
    "gamma/beta saved but moving_mean or moving_variance missing",
    "save every variable, not only the trainable ones: the moving statistics are not trainable",
    fixes={
        Framework.TF1: "save all variables: tf.compat.v1.train.Saver() or Saver(tf.global_variables()), "
        "not Saver(tf.trainable_variables())",
        Framework.TF2: "checkpoint the model itself (tf.train.Checkpoint(model=model)); a var_list of your own must "
        "include model.non_trainable_variables",
        Framework.KERAS: "save with model.save or model.save_weights (they include the non-trainable weights), not a "
        "list of model.trainable_weights",
        Framework.ONNX: "export the whole module with its buffers (running_mean, running_var), not only its parameters",
    },
    model_wide="no BN layer has its moving statistics in the file: only the trainable variables were saved",
    model_wide_when="moving_mean and moving_variance missing",
)
@per_layer
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

    With the training graph (``.meta``), the message names the cause when the graph's
    Saver leaves the statistics out (BN104).

    Silence: ``--ignore BN001`` (e.g. a model that uses batch statistics at inference).
    """
    if not ({"gamma", "beta"} & layer.variables.keys()):
        return
    missing = [role for role in ("moving_mean", "moving_variance") if role not in layer.variables]
    if missing:
        present = "/".join(role for role in ("gamma", "beta") if role in layer.variables)
        cause = cause_of_missing_stats(layer, context.graph)
        yield (
            layer.name,
            f"{present} saved but {' and '.join(missing)} missing: restored, they would be 0/1"
            + (f" — {cause}" if cause else ""),
        )


@rule(
    "BN002",
    "stats-never-updated",
    Severity.ERROR,
    "moving statistics exactly 0/1 while the model trained",
    "make the BN update ops run while training (BN called in training mode, nothing skipping the updates)",
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
    },
    model_wide="the moving statistics of every BN layer are exactly 0/1 while the model trained: "
    "the update ops never ran",
)
@per_layer(values=False)
@_frozen_aware(keep_own_evidence=True)
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
    should learn (Keras then runs it in inference mode). ONNX (a PyTorch export): the source
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
    if not _stats_at_initial(layer):
        return
    own = _trained_evidence(layer)
    cause = cause_of_stale_stats(layer, context.graph)
    because = f" — {cause}" if cause else ""
    if own:
        yield layer.name, f"moving_mean all 0 and moving_variance all 1, yet gamma/beta trained ({own}){because}"
    elif not ({"gamma", "beta"} & layer.stats.keys()) and context.trained:
        yield (
            layer.name,
            f"moving_mean all 0 and moving_variance all 1, yet the model trained ({context.trained}){because}",
        )


@rule(
    "BN003",
    "layer-untrained",
    Severity.WARNING,
    "every BN variable still at its initial value",
    "check that this layer (or model) was trained before it was saved",
    model_wide="every BN layer is still at its initial values: the whole model looks untrained (saved before "
    "training, or the wrong checkpoint)",
    model_wide_when="the whole model looks untrained",
)
@per_layer(values=False)
@_frozen_aware()
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
    if not _stats_at_initial(layer) or _trained_evidence(layer):
        return
    if not ({"gamma", "beta"} & layer.stats.keys()) and context.trained:
        return  # BN002's case: the model trained around it
    scope = (
        f"the model trained ({context.trained}) but not this layer"
        if context.trained
        else "the whole model looks untrained"
    )
    yield layer.name, f"gamma, beta, moving_mean and moving_variance all at their initial values; {scope}"


@rule(
    "BN004",
    "non-finite-stats",
    Severity.ERROR,
    "NaN or Inf in a BN variable",
    "find the NaN source (batch of one, learning rate, fp16 overflow) and retrain from a good checkpoint",
)
@per_layer
def non_finite(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """A BN variable holds NaN or Inf.

    Why it matters: one NaN channel turns every output of the layer that depends on it
    into NaN at inference.

    Fix: common causes are a batch of one (variance of one sample, NaN on some GPUs),
    a learning rate too high, float16 overflow without loss scaling. TF1/Keras/TF2
    alike: add ``tf.debugging.check_numerics`` or ``tf.debugging.enable_check_numerics()``
    while training, drop incomplete batches (``drop_remainder=True``), and restart from
    the last finite checkpoint.

    Silence: ``--ignore BN004``.
    """
    bad = [f"{role}: {stats.nonfinite} of {stats.size}" for role, stats in layer.stats.items() if stats.nonfinite]
    if bad:
        yield layer.name, "non-finite values in " + "; ".join(bad)


@rule(
    "BN005",
    "non-positive-variance",
    Severity.ERROR,
    "moving_variance negative (error) or zero (warning) in some channel",
    "find what wrote the variance (hand-made assign, corrupted export) and retrain or restore it",
)
@per_layer
def non_positive_variance(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """moving_variance is below zero (error) or exactly zero (warning) in some channel.

    Why it matters: a variance cannot be negative; sqrt(var + epsilon) becomes NaN or
    tiny and the channel explodes at inference. A zero variance divides by
    sqrt(epsilon) alone.

    Fix: the moving-average update cannot make a variance negative: look for a
    hand-written assign, a conversion or quantisation bug, or a file edited after
    training, and restore the variable from a good checkpoint (TF1, Keras and TF2 alike).

    Silence: ``--ignore BN005``.
    """
    stats = layer.stats.get("moving_variance")
    if stats is None or (not stats.nonfinite and (stats.min is None or stats.min > 0)):
        return  # every channel finite and positive (-Inf, not in stats.min, is looked for below)
    variance = _f64(layer, "moving_variance")
    negative = int(np.count_nonzero(variance < 0))
    zero = int(np.count_nonzero(variance == 0))
    if negative:
        lowest = float(np.nanmin(variance))
        yield layer.name, f"moving_variance negative in {negative} of {variance.size} channels (min {lowest:.3g})"
    elif zero:
        yield layer.name, f"moving_variance exactly 0 in {zero} of {variance.size} channels", Severity.WARNING


@rule(
    "BN006",
    "stats-barely-updated",
    Severity.WARNING,
    "moving statistics still close to their initial 0/1",
    "train longer or lower the momentum (e.g. 0.9) so the moving averages converge",
    fixes={
        Framework.TF1: "train longer, or tf.compat.v1.layers.batch_normalization(momentum=0.9) so the moving "
        "averages converge faster",
        Framework.TF2: "train longer, or BatchNormalization(momentum=0.9) so the moving averages converge faster",
        Framework.KERAS: "train longer, or BatchNormalization(momentum=0.9) so the moving averages converge faster",
        Framework.ONNX: "train longer, or raise the source model's BN momentum (PyTorch: the weight of each new "
        "batch, 0.1 by default)",
    },
    model_wide="the moving statistics of every BN layer are still close to 0/1: too few steps for the momentum",
)
@per_layer(values=False)
@_frozen_aware()
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

    Frozen layers (``trainable=False`` in a Keras config): reported as info, saying so, and the step-count
    estimate is not used (the steps did not update a frozen layer).

    Silence: ``--ignore BN006``; the thresholds are settings.
    """
    mean, variance = layer.stats.get("moving_mean"), layer.stats.get("moving_variance")
    if mean is None or variance is None or mean.nonfinite or variance.nonfinite or _stats_at_initial(layer):
        return
    limits = context.thresholds
    close = max(_largest_magnitude(mean), _largest_magnitude(variance, 1.0))
    if close > limits.barely_tolerance * 10:
        return  # far from 0/1 (most layers); the tolerance below is this or a tenth of it
    momentum, source = _momentum(layer, context)
    steps = context.step
    remaining = momentum**steps if steps else None
    # m**n says how much of 0/1 should remain; the values themselves must agree before anything is claimed
    expected_close = layer.hints.momentum is not None and remaining is not None and remaining > limits.barely_remaining
    tolerance = limits.barely_tolerance * (10 if expected_close else 1)
    if close > tolerance:
        return
    evidence = _trained_evidence(layer) or (context.trained if not ({"gamma", "beta"} & layer.stats.keys()) else None)
    if evidence:
        estimate = (
            f"; after {steps} steps with momentum {momentum:g} ({source}) {remaining:.0%} of it would remain"
            if remaining is not None
            else ""
        )
        yield (
            layer.name,
            f"moving statistics within {close:.2g} of their initial 0/1 while gamma/beta trained{estimate}",
        )


@rule(
    "BN007",
    "extreme-amplification",
    Severity.WARNING,
    "|gamma| / sqrt(moving_variance + epsilon) very large in some channel",
    "check the channel's variance (dead or collapsed channel) and gamma; consider a larger epsilon",
)
@per_layer
def extreme_amplification(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """In some channel the layer multiplies its input by more than ``amplification``
    (1e3): |gamma| / sqrt(moving_variance + epsilon). A layer without gamma uses 1.

    Why it matters: such a channel turns tiny input noise (or a shift between training
    and inference data) into huge activations; it usually means the variance collapsed
    while gamma did not.

    Fix: inspect the channel (a dead channel whose variance went to ~0 with a large
    gamma); a larger ``epsilon`` (TF1: ``batch_normalization(epsilon=...)``; Keras/TF2:
    ``BatchNormalization(epsilon=...)``) bounds the factor; weight decay on gamma keeps
    it from growing.

    Silence: ``--ignore BN007``; the threshold is a setting.
    """
    epsilon = layer.hints.epsilon if layer.hints.epsilon is not None else context.thresholds.default_epsilon
    limit = context.thresholds.amplification
    variance_stats, gamma_stats = layer.stats.get("moving_variance"), layer.stats.get("gamma")
    if variance_stats is None:
        return
    bounded = variance_stats.min is not None and not variance_stats.nonfinite and variance_stats.min + epsilon > 0
    if bounded and (gamma_stats is None or not gamma_stats.nonfinite):
        largest_gamma = 1.0 if gamma_stats is None else _largest_magnitude(gamma_stats)
        if largest_gamma / math.sqrt(variance_stats.min + epsilon) <= limit * (1 - 1e-9):
            return  # a bound on every channel's factor (with room for rounding) is below the limit
    variance = _f64(layer, "moving_variance")
    gamma = _f64(layer, "gamma")
    if gamma is None:
        gamma = np.ones_like(variance)
    if gamma.shape != variance.shape:
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.abs(gamma) / np.sqrt(variance + epsilon)
    factor = factor[np.isfinite(factor)]
    if factor.size and factor.max() > limit:
        count = int(np.count_nonzero(factor > limit))
        yield (
            layer.name,
            f"amplification up to {factor.max():.3g} (|gamma|/sqrt(var+{epsilon:g})) in {count} channel(s)",
        )


@rule(
    "BN008",
    "outlier-stats",
    Severity.WARNING,
    "moving statistics beyond sane bounds",
    "look for unnormalised inputs or a diverging run; check the data pipeline feeding this layer",
)
@per_layer
def outlier_stats(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """|moving_mean| above ``mean_bound`` (1e4), moving_variance above
    ``variance_bound`` (1e6), or a largest/median variance ratio across channels above
    ``variance_ratio`` (1e6).

    Why it matters: statistics of that size usually mean unnormalised inputs (raw
    0-255 pixels, unscaled features) or a run that was diverging when saved; the layer
    then depends on a few channels and breaks on slightly different data.

    Fix: normalise the inputs (Keras/TF2: a ``Rescaling`` or ``Normalization`` layer;
    TF1: scale in the input pipeline), and check the learning rate.

    Silence: ``--ignore BN008``; the bounds are settings.
    """
    limits = context.thresholds
    mean, variance = layer.stats.get("moving_mean"), layer.stats.get("moving_variance")
    problems = []
    if mean is not None and mean.size and not mean.nonfinite and _largest_magnitude(mean) > limits.mean_bound:
        problems.append(f"|moving_mean| up to {_largest_magnitude(mean):.3g}")
    if variance is not None and variance.size and not variance.nonfinite:  # judged only when all finite
        largest, smallest = variance.max, variance.min
        if largest > limits.variance_bound:
            problems.append(f"moving_variance up to {largest:.3g}")
        # median >= smallest > 0, so largest/median > ratio needs largest > ratio * smallest (else skip the sort)
        if smallest <= 0 or largest > 0.5 * limits.variance_ratio * smallest:
            median = float(np.median(_f64(layer, "moving_variance")))
            if median > 0 and largest / median > limits.variance_ratio:
                problems.append(f"largest/median variance ratio {largest / median:.3g}")
    if problems:
        yield layer.name, "; ".join(problems)


@rule(
    "BN009",
    "duplicate-stats",
    Severity.WARNING,
    "two layers hold bit-identical, non-initial moving statistics",
    "check for a shared layer or a copy-paste in the export; each layer needs its own statistics",
)
def duplicate_stats(layers: list[BNLayer], context: Context) -> Iterator[Hit]:
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
        if layer.fingerprint is None or mean is None or mean.size < 2:
            continue
        first = seen.setdefault(layer.fingerprint, layer.name)  # even at 0/1: only layers at 0/1 match it, skipped
        if first != layer.name and not _stats_at_initial(layer):
            yield layer.name, f"moving statistics bit-identical to those of layer {first}"


@rule(
    "BN010",
    "dead-channels",
    Severity.INFO,
    "a large share of channels with |gamma| near 0",
    "consider pruning the channels or lowering weight decay on gamma",
)
@per_layer
def dead_channels(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """At least ``dead_share`` (50%) of the layer's channels have |gamma| at or below
    ``dead_gamma`` (1e-3): they output only beta.

    Why it matters: it is often harmless (sparsity from L1 on gamma is even a pruning
    technique), but a layer mostly dead can also mean too much weight decay or a
    learning rate that killed the channels.

    Fix: if unintended, lower the regularisation on gamma (TF1:
    ``gamma_regularizer``; Keras/TF2: ``BatchNormalization(gamma_regularizer=None)``) or
    the learning rate; if intended, prune the channels.

    Silence: ``--ignore BN010``; the thresholds are settings.
    """
    stats, limits = layer.stats.get("gamma"), context.thresholds
    if stats is None or not stats.size:
        return
    if (
        limits.dead_share > 0
        and math.isfinite(limits.dead_gamma)
        and (stats.min is None or stats.min > limits.dead_gamma or stats.max < -limits.dead_gamma)
    ):
        return  # no finite |gamma| that small, and NaN/Inf are not dead: no channel dead
    gamma = _f64(layer, "gamma")
    dead = int(np.count_nonzero(np.abs(gamma) <= context.thresholds.dead_gamma))
    if dead / gamma.size >= context.thresholds.dead_share:
        yield layer.name, f"{dead} of {gamma.size} channels have |gamma| <= {context.thresholds.dead_gamma:g}"


@rule(
    "BN011",
    "inconsistent-layer",
    Severity.ERROR,
    "the variables of one BN layer disagree in shape or dtype",
    "the file mixes variables of different layers or models; re-export it from one model",
)
@per_layer
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


@rule(
    "BN012",
    "stats-have-optimizer-slots",
    Severity.WARNING,
    "moving statistics carry optimizer slots: they were trained by gradient",
    "keep moving_mean/moving_variance out of the optimizer's variables",
    fixes={
        Framework.TF1: "keep moving_mean/moving_variance out of the optimizer's var_list and out of "
        "TRAINABLE_VARIABLES",
        Framework.TF2: "apply gradients to model.trainable_variables only",
        Framework.KERAS: "do not make the moving statistics trainable (custom layers: add_weight(trainable=False))",
    },
)
@per_layer
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


@rule(
    "BN013",
    "exported-in-training-mode",
    Severity.ERROR,
    "a BN node of an exported model computes batch statistics (exported in training mode)",
    "export in inference mode",
    fixes={
        Framework.ONNX: "export in inference mode (PyTorch: model.eval() before torch.onnx.export and the default "
        "TrainingMode.EVAL; tf2onnx: the inference function)",
        Framework.TF1: "build the exported graph with training=False (slim: is_training=False) before freezing",
        Framework.TF2: "export a function that calls the model with training=False",
        Framework.KERAS: "export with model.export() or a tf.function calling the model with training=False",
    },
    model_wide="every BN node of the export computes batch statistics: the model was exported in training mode",
)
@per_layer
def exported_in_training_mode(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """An exported BatchNormalization node runs in training mode: ONNX ``training_mode=1``, or
    a node with the running-statistics outputs (running_mean, running_var) that only
    training mode produces.

    Why it matters: in training mode the node normalises every batch with that batch's own
    mean and variance and ignores the saved moving statistics. An inference runtime then
    gives outputs that depend on the other samples of the batch, and wrong results for a
    batch of one, although the saved statistics may be perfect.

    Fix: export from inference mode. PyTorch: ``model.eval()`` before
    ``torch.onnx.export(model, ...)`` and no ``training=torch.onnx.TrainingMode.TRAINING``
    (or ``PRESERVE`` on a model left in train mode). Keras/TF2 via tf2onnx: export the
    inference function (``model(x, training=False)``); TF1: freeze the graph built with
    ``training=False`` (``is_training=False`` for slim).

    Silence: ``--ignore BN013`` (e.g. a model exported for on-device training).
    """
    if layer.hints.training_mode:
        yield layer.name, "exported in training mode: the node normalises with batch statistics, not the saved ones"
