"""Rules on values no healthy layer holds: BN004 NaN/Inf, BN005 variance <= 0, BN007 huge amplification,
BN008 outliers, BN010 dead channels.

Most layers are healthy: a rule first asks the layer's Stats (min, max, non-finite count) whether it could
fire, and looks at the values only when it could.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..findings import Severity
from ..layers import BNLayer
from ..stats import largest_magnitude
from .rule import Context, Hit, LayerRule


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
    bad = [
        f"{role}: {stats.nonfinite} of {stats.size}"
        for role, stats in layer.stats.items()
        if stats.nonfinite and role in layer.variables  # not the scales derived from them
    ]
    if bad:
        yield layer.name, "non-finite values in " + "; ".join(bad)


BN004 = LayerRule(
    code="BN004",
    name="non-finite-stats",
    severity=Severity.ERROR,
    summary="NaN or Inf in a BN variable",
    fix="find the NaN source (batch of one, learning rate, fp16 overflow) and retrain from a good checkpoint",
    check=non_finite,
)


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
    variance = layer.float64("moving_variance")
    negative = int(np.count_nonzero(variance < 0))
    zero = int(np.count_nonzero(variance == 0))
    if negative:
        lowest = float(np.nanmin(variance))
        yield layer.name, f"moving_variance negative in {negative} of {variance.size} channels (min {lowest:.3g})"
    elif zero:
        yield layer.name, f"moving_variance exactly 0 in {zero} of {variance.size} channels", Severity.WARNING


BN005 = LayerRule(
    code="BN005",
    name="non-positive-variance",
    severity=Severity.ERROR,
    summary="moving_variance negative (error) or zero (warning) in some channel",
    fix="find what wrote the variance (hand-made assign, corrupted export) and retrain or restore it",
    check=non_positive_variance,
)


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
    epsilon = layer.hints.epsilon if layer.hints.epsilon is not None else context.default_epsilon
    limit = context.thresholds.amplification
    variance_stats, gamma_stats = layer.stats.get("moving_variance"), layer.stats.get("gamma")
    if variance_stats is None:
        return
    bounded = variance_stats.min is not None and not variance_stats.nonfinite and variance_stats.min + epsilon > 0
    if bounded and (gamma_stats is None or not gamma_stats.nonfinite):
        largest_gamma = 1.0 if gamma_stats is None else largest_magnitude(gamma_stats)
        if largest_gamma / math.sqrt(variance_stats.min + epsilon) <= limit * (1 - 1e-9):
            return  # a bound on every channel's factor (with room for rounding) is below the limit
    variance = layer.float64("moving_variance")
    gamma = layer.float64("gamma")
    if gamma is None:
        gamma = np.ones_like(variance)
    if gamma.shape != variance.shape:
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.abs(gamma) / np.sqrt(variance + epsilon)
    # an infinite factor is a variance + epsilon of 0; NaN, and Inf from an infinite gamma, are BN004's
    factor = factor[np.isfinite(factor) | (np.isinf(factor) & np.isfinite(gamma))]
    if factor.size and factor.max() > limit:
        count = int(np.count_nonzero(factor > limit))
        yield (
            layer.name,
            f"amplification up to {factor.max():.3g} (|gamma|/sqrt(var+{epsilon:g})) in {count} channel(s)",
        )


BN007 = LayerRule(
    code="BN007",
    name="extreme-amplification",
    severity=Severity.WARNING,
    summary="|gamma| / sqrt(moving_variance + epsilon) very large in some channel",
    fix="check the channel's variance (dead or collapsed channel) and gamma; consider a larger epsilon",
    check=extreme_amplification,
)


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
    if mean is not None and mean.size and not mean.nonfinite and largest_magnitude(mean) > limits.mean_bound:
        problems.append(f"|moving_mean| up to {largest_magnitude(mean):.3g}")
    if variance is not None and variance.size and not variance.nonfinite:  # judged only when all finite
        largest, smallest = variance.max, variance.min
        if largest > limits.variance_bound:
            problems.append(f"moving_variance up to {largest:.3g}")
        # median >= smallest > 0, so largest/median > ratio needs largest > ratio * smallest (else skip the sort)
        if smallest <= 0 or largest > 0.5 * limits.variance_ratio * smallest:
            median = float(np.median(layer.float64("moving_variance")))
            if median > 0 and largest / median > limits.variance_ratio:
                problems.append(f"largest/median variance ratio {largest / median:.3g}")
    if problems:
        yield layer.name, "; ".join(problems)


BN008 = LayerRule(
    code="BN008",
    name="outlier-stats",
    severity=Severity.WARNING,
    summary="moving statistics beyond sane bounds",
    fix="look for unnormalised inputs or a diverging run; check the data pipeline feeding this layer",
    check=outlier_stats,
)


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
    gamma = layer.float64("gamma")
    dead = int(np.count_nonzero(np.abs(gamma) <= context.thresholds.dead_gamma))
    if dead / gamma.size >= context.thresholds.dead_share:
        yield layer.name, f"{dead} of {gamma.size} channels have |gamma| <= {context.thresholds.dead_gamma:g}"


BN010 = LayerRule(
    code="BN010",
    name="dead-channels",
    severity=Severity.INFO,
    summary="a large share of channels with |gamma| near 0",
    fix="consider pruning the channels or lowering weight decay on gamma",
    check=dead_channels,
)
