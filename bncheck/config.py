"""Settings: what to check and how strictly. The command line builds one."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Severity


@dataclass(frozen=True)
class Thresholds:
    """Numbers the value rules compare against (defaults documented in each rule)."""

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


@dataclass(frozen=True)
class Settings:
    fail_on: Severity | None = Severity.ERROR  # None: never fail on findings
    select: tuple[str, ...] = ()  # codes or prefixes; empty means all
    ignore: tuple[str, ...] = ()
    thresholds: Thresholds = Thresholds()

    def wants(self, code: str) -> bool:
        if self.select and not any(code.startswith(s) for s in self.select):
            return False
        return not any(code.startswith(s) for s in self.ignore)
