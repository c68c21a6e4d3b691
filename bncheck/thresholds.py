"""Thresholds: the numbers the rules compare against, each checked against its valid range."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import ConfigError

# Valid range of each threshold: (low, high, low included). Shares and momentum are fractions; bounds are
# positive; tolerances may be 0. Every value must be finite.
RANGES: dict[str, tuple[float, float, bool]] = {
    "default_momentum": (0.0, 1.0, True),
    "default_epsilon": (0.0, math.inf, True),
    "barely_remaining": (0.0, 1.0, True),
    "barely_tolerance": (0.0, math.inf, True),
    "amplification": (0.0, math.inf, False),
    "mean_bound": (0.0, math.inf, False),
    "variance_bound": (0.0, math.inf, False),
    "variance_ratio": (1.0, math.inf, True),
    "dead_gamma": (0.0, math.inf, True),
    "dead_share": (0.0, 1.0, True),
    "change_rtol": (0.0, math.inf, True),
    "change_atol": (0.0, math.inf, True),
    "stats_shift": (0.0, math.inf, True),
}


def _check_range(name: str, value: float, origin: str, spelled: str | None = None) -> None:
    low, high, low_included = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{origin}: threshold '{spelled or name}' must be a number, not {value!r}")
    inside = (value >= low if low_included else value > low) and value <= high
    if not (math.isfinite(value) and inside):
        if high == math.inf:
            valid = f"{'>=' if low_included else '>'} {low:g}"
        else:
            valid = f"in {'[' if low_included else '('}{low:g}, {high:g}]"
        raise ConfigError(f"{origin}: threshold '{spelled or name}' must be a finite number {valid}, not {value!r}")


@dataclass(frozen=True)
class Thresholds:  # (see framework_defaults for the frameworks whose BN defaults are not Keras's)
    """Numbers the value rules compare against (defaults documented in each rule; valid ranges in RANGES)."""

    default_momentum: float = 0.99  # Keras and tf.layers default when a file does not record it
    default_epsilon: float = 1e-3  # Keras and tf.layers default
    barely_remaining: float = 0.25  # BN006: share m**n of the initial value still in the stats
    barely_tolerance: float = 1e-2  # BN006: max |mean| and |var - 1| counted as "close to init"
    amplification: float = 1e3  # BN007: max |gamma| / sqrt(var + eps)
    mean_bound: float = 1e4  # BN008
    variance_bound: float = 1e6  # BN008
    variance_ratio: float = 1e6  # BN008: max var / median var across channels
    dead_gamma: float = 1e-3  # BN010: |gamma| at or below this is a dead channel
    dead_share: float = 0.5  # BN010: share of dead channels that is reported
    change_rtol: float = 0.0  # diff: an element changed when |b - a| > change_atol + change_rtol * |a|
    change_atol: float = 0.0
    stats_shift: float = 1.0  # BN204: max |b - a| / min(max |a|, max |b|) of a moving statistic

    def __post_init__(self) -> None:
        for name in self.names():
            _check_range(name, getattr(self, name), "Thresholds")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def updated(self, values: dict[str, Any], origin: str) -> Thresholds:
        changes = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in self.names():
                raise ConfigError(f"{origin}: unknown threshold '{key}' (known: {', '.join(self.names())})")
            try:
                if isinstance(value, bool):
                    raise TypeError
                changes[name] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{origin}: threshold '{key}' must be a number, not {value!r}") from None
            _check_range(name, changes[name], origin, key)
        return replace(self, **changes)


# BN defaults of frameworks other than Keras/TensorFlow (momentum as the weight of the history, as Keras
# spells it), used where a file does not record its own and the thresholds are left at Keras's defaults.
FRAMEWORK_DEFAULTS: dict[str, tuple[float, float, str]] = {
    "PyTorch": (0.9, 1e-5, "PyTorch's default momentum=0.1, the weight of each new batch"),
}


_KERAS = Thresholds()


def framework_defaults(thresholds: Thresholds, framework: str | None) -> tuple[float, float, str]:
    """(momentum, epsilon, how the momentum default is named) for a file of ``framework`` (its value)."""
    keras = _KERAS  # asked for every layer: made once
    own = FRAMEWORK_DEFAULTS.get(framework or "")
    momentum, epsilon = thresholds.default_momentum, thresholds.default_epsilon
    if own is None or (momentum, epsilon) != (keras.default_momentum, keras.default_epsilon):
        return momentum, epsilon, "framework default"
    return own
