"""Naming conventions every stage relies on: what a BN scope, another norm and a step counter are called."""

from __future__ import annotations

import re
from collections.abc import Container

# A layer or scope name that says batch norm: batch_normalization_3, BatchNorm, conv1_bn, bn2, bn_Conv1 ...
BN_NAME = re.compile(r"batch_?norm|(^|[_\-.])bn(_?\d+)?($|[_\-.])", re.IGNORECASE)
# Scopes of the other normalisations with gamma/beta but no moving statistics.
OTHER_NORM_NAME = re.compile(r"(layer|group|instance)_?norm", re.IGNORECASE)
# Leaf names of step counters, most telling first; save_counter counts saves, not steps.
STEP_NAMES = ("global_step", "iter", "iteration", "iterations", "_iterations", "save_counter")
EMA_SLOTS = ("ExponentialMovingAverage",)  # tf.train.ExponentialMovingAverage shadows: slots, not an optimizer's


def debiased_statistic(shadow_scope: str, known: Container[str]) -> str | None:
    """The statistic a zero-debias shadow ``<shadow_scope>/biased`` belongs to: TensorFlow names the shadow
    after the statistic inside the scope its update was built in (slim's ``BatchNorm/moving_mean`` gets
    ``BatchNorm/BatchNorm/moving_mean/biased``), so the statistic is the longest known suffix of the path."""
    parts = shadow_scope.split("/")
    for cut in range(len(parts)):
        candidate = "/".join(parts[cut:])
        if candidate in known:
            return candidate
    return None


# A sharded checkpoint's index, as Hugging Face names it: model.safetensors.index.json, pytorch_model.bin.index.json
INDEX_SUFFIX = ".index.json"
