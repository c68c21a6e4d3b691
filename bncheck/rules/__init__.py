"""The rule catalogue: every rule, in the order ``bncheck rules`` lists them.

A rule is data plus a pure check function (:mod:`.rule`); the modules group rules that share a
subject. Adding a rule: write its check and its :class:`~.rule.Rule` in the module of its subject
(or a new one), and list it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from . import diff, export, graph, health, saved, updates
from .rule import Context, DiffContext, DiffRule, Hit, Kind, LayerRule, ModelRule, Needs, Rule

__all__ = [
    "RULES",
    "Context",
    "DiffContext",
    "DiffRule",
    "Hit",
    "Kind",
    "LayerRule",
    "ModelRule",
    "Needs",
    "Rule",
    "of_kind",
]


def _catalogue(*rules: Rule) -> Mapping[str, Rule]:
    codes = [rule.code for rule in rules]
    if len(set(codes)) != len(codes):
        raise ValueError(f"a rule code is listed twice: {codes}")
    return MappingProxyType({rule.code: rule for rule in rules})


RULES = _catalogue(
    # inspect, values: BN001-BN013
    saved.BN001,
    updates.BN002,
    updates.BN003,
    health.BN004,
    health.BN005,
    updates.BN006,
    health.BN007,
    health.BN008,
    saved.BN009,
    health.BN010,
    saved.BN011,
    saved.BN012,
    export.BN013,
    # inspect, with a training graph: BN101-BN105
    graph.BN101,
    graph.BN102,
    graph.BN103,
    graph.BN104,
    graph.BN105,
    # diff: BN201-BN204
    diff.BN201,
    diff.BN202,
    diff.BN203,
    diff.BN204,
)


def of_kind(kind: Kind) -> list[Rule]:
    """The rules that ``kind`` of command runs, in catalogue order."""
    return [rule for rule in RULES.values() if rule.kind is kind]
