"""Naming conventions every stage relies on: what a BN scope, another norm and a step counter are called."""

from __future__ import annotations

import re

# A layer or scope name that says batch norm: batch_normalization_3, BatchNorm, conv1_bn, bn2, bn_Conv1 ...
BN_NAME = re.compile(r"batch_?norm|(^|[_\-.])bn(_?\d+)?($|[_\-.])", re.IGNORECASE)
# Scopes of the other normalisations with gamma/beta but no moving statistics.
OTHER_NORM_NAME = re.compile(r"(layer|group|instance)_?norm", re.IGNORECASE)
# Leaf names of step counters, most telling first; save_counter counts saves, not steps.
STEP_NAMES = ("global_step", "iter", "iteration", "iterations", "_iterations", "save_counter")
