"""What grouping returns: the BN layers of a model, each its variables by role; loading gives each a new
value with its values and their summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from .facts import NO_HINTS, NOTHING, LayerHints, Variable

if TYPE_CHECKING:
    import numpy as np

    from .stats import Stats

ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
INITIAL = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}  # as every framework builds them


class BNLayer(NamedTuple):
    """The variables of one BatchNormalization layer and, once loaded, their values (or why not).

    Immutable; a named tuple, not a frozen dataclass, because a frozen dataclass's ``__init__`` costs
    three times as much and a model makes two of these for each of up to 20,000 layers. A layer equals only
    itself (comparing values would compare arrays)."""

    name: str
    variables: Mapping[str, Variable]  # role ('gamma', ..., or an extra such as 'renorm_mean') -> variable
    hints: LayerHints = NO_HINTS
    values: Mapping[str, np.ndarray] = NOTHING  # role -> array, while analysed
    stats: Mapping[str, Stats] = NOTHING  # role -> summary; kept when the values are not
    stats_digest: bytes | None = None  # equal in two layers whose moving statistics are bit-identical
    unreadable: str | None = None  # why the values could not be loaded

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    __hash__ = object.__hash__

    def get(self, role: str) -> Variable | None:
        return self.variables.get(role)

    @property
    def channels(self) -> int | None:
        for role in ROLES:
            if role in self.variables:
                return self.variables[role].size
        return None

    def loaded(
        self, values: Mapping[str, np.ndarray], stats: Mapping[str, Stats], stats_digest: bytes | None
    ) -> BNLayer:
        """This layer with its values, their summaries and the digest of its moving statistics."""
        return BNLayer(self.name, self.variables, self.hints, values, stats, stats_digest)

    def failed(self, why: str) -> BNLayer:
        """This layer, its values unreadable for the reason ``why``."""
        return BNLayer(self.name, self.variables, self.hints, unreadable=why)

    def summarised(self, stats: Mapping[str, Stats]) -> BNLayer:
        """This layer without its values, keeping ``stats`` (a smaller form of its summaries)."""
        return BNLayer(self.name, self.variables, self.hints, NOTHING, stats, self.stats_digest, self.unreadable)

    def statistics_at_initial(self) -> bool:
        """Whether moving_mean and moving_variance were read and are exactly their initial 0 and 1."""
        return bool(self.at_initial("moving_mean") and self.at_initial("moving_variance"))

    def float64(self, role: str) -> np.ndarray | None:
        """The loaded values of ``role`` as a flat float64 array (None: not loaded)."""
        value = self.values.get(role)
        return None if value is None else value.astype("float64").ravel()

    def at_initial(self, role: str) -> bool | None:
        """Whether every element of ``role`` is exactly its initial value (None: not loaded)."""
        stats = self.stats.get(role)
        if stats is None:
            return None
        return not stats.nonfinite and (not stats.size or stats.min == stats.max == INITIAL[role])
