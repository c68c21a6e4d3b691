"""How much each BN layer scales its input, channel by channel: |gamma| and the amplification
|gamma| / sqrt(moving_variance + epsilon), kept as Stats beside the variables' own (under SCALES).

Computed for a loaded chunk of layers in a few numpy calls over all of them at once; the HTML report
draws them along the depth of the network. A layer without gamma scales by 1 / sqrt(var + eps)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layers import BNLayer
from .stats import summarise_segments

SCALES = ("abs_gamma", "amplification")  # keys in BNLayer.stats; not variables (no role in layer.variables)


def with_scales(layers: Sequence[BNLayer], default_epsilon: float) -> list[BNLayer]:
    """``layers`` (loaded) with the Stats of |gamma| and of the amplification added where moving_variance
    was read (and gamma, if any, has as many channels); ``default_epsilon`` where a file records none."""
    scaled = [layer for layer in layers if _scalable(layer)]
    if not scaled:
        return list(layers)
    sizes = [layer.values["moving_variance"].size for layer in scaled]
    variance = np.concatenate([layer.values["moving_variance"] for layer in scaled], axis=None, dtype=np.float64)
    gamma = np.concatenate(
        [layer.values.get("gamma", np.ones(size)) for layer, size in zip(scaled, sizes, strict=True)],
        axis=None,
        dtype=np.float64,
    )
    epsilon = np.repeat([_epsilon(layer, default_epsilon) for layer in scaled], sizes)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        magnitude = np.abs(gamma)
        amplification = magnitude / np.sqrt(variance + epsilon)
    scales = dict(
        zip(
            scaled,
            zip(summarise_segments(magnitude, sizes), summarise_segments(amplification, sizes), strict=True),
            strict=True,
        )
    )
    result = []
    for layer in layers:
        if layer not in scales:
            result.append(layer)
            continue
        magnitude_stats, amplification_stats = scales[layer]
        added = {"amplification": amplification_stats}
        if "gamma" in layer.values:
            added["abs_gamma"] = magnitude_stats
        result.append(layer.loaded(layer.values, {**layer.stats, **added}, layer.stats_digest))
    return result


def _scalable(layer: BNLayer) -> bool:
    variance, gamma = layer.values.get("moving_variance"), layer.values.get("gamma")
    return variance is not None and variance.size > 0 and (gamma is None or gamma.size == variance.size)


def _epsilon(layer: BNLayer, default: float) -> float:
    return layer.hints.epsilon if layer.hints.epsilon is not None else default
