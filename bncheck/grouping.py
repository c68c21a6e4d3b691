"""Group the variables of a model file into BatchNormalization layers.

A variable belongs to a layer when its name ends in one of the BN roles (``gamma``,
``beta``, ``moving_mean``, ``moving_variance``) or extras (renorm, ``moving_stddev``,
zero-debias ``moving_mean/biased``); the scope before that is the layer name. What
follows a role (``gamma/Adam``, ``moving_mean/ExponentialMovingAverage``,
``.OPTIMIZER_SLOT/...``) is an optimizer slot or EMA shadow and is attached to the
variable, never counted as a layer. A scope with moving statistics is a BN layer; a
scope with only gamma/beta is one when its name, a config or a graph says so
(LayerNormalization has gamma/beta too), and is otherwise reported as unconfirmed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .facts import NO_HINTS, ModelFile, Variable
from .layers import ROLES, BNLayer
from .naming import BN_NAME, OTHER_NORM_NAME, debiased_statistic

EXTRAS = ("renorm_mean", "renorm_stddev", "renorm_mean_weight", "renorm_stddev_weight", "moving_stddev")
ZERO_DEBIAS = ("biased", "local_step")
_ROLE_NAMES = {role: role for role in ROLES + EXTRAS}
_AFFINE = frozenset(("gamma", "beta"))
_DIGITS = re.compile(r"(\d+)")
# Keras 2.11+ optimizers name their slots "<Optimizer>/<slot>/<variable name>", e.g. "Adam/m/bn/gamma".
_OPTIMIZER = re.compile(
    r"^(adam\w*|sgd|rmsprop|adagrad|adadelta|adamax|nadam|ftrl|lion|adafactor|lamb)$", re.IGNORECASE
)


@dataclass(frozen=True)
class Grouping:
    layers: list[BNLayer]
    unconfirmed: list[str] = field(default_factory=list)  # scopes with gamma/beta only
    notes: list[str] = field(default_factory=list)  # where names and graph structure disagree


def natural_key(text: str) -> list[object]:
    """Sort 'bn_2' before 'bn_10'."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(text)]


Slots = dict[Variable, dict[str, Variable]]  # variable -> the slots found for it by name, in order


def _optimizer_slots(variables: Sequence[Variable], slots: Slots) -> Sequence[Variable]:
    """Add "Adam/m/<name>"-style slots of variable <name> to ``slots``; return the other variables."""
    firsts = {variable.name.partition("/")[0] for variable in variables}
    optimizers = {first for first in firsts if _OPTIMIZER.match(first)}
    if not optimizers:  # the usual checkpoint: no such slots
        return variables
    by_name = {v.name: v for v in variables}
    rest = []
    for variable in variables:
        parts = variable.name.split("/")
        if len(parts) > 2 and parts[0] in optimizers:
            for cut in (2, 1):
                owner = by_name.get("/".join(parts[cut:]))
                if owner is not None and owner is not variable:
                    slots.setdefault(owner, {}).setdefault("/".join(parts[:cut]), variable)
                    break
            else:
                rest.append(variable)
        else:
            rest.append(variable)
    return rest


def _split(name: str) -> tuple[str, str, list[str]] | None:
    """``name`` as (scope, role, the parts after the role) at its last part that is a role; None if none is."""
    scope, _, leaf = name.rpartition("/")
    role = _ROLE_NAMES.get(leaf)  # the one shared string of the role, not a copy per variable
    if role is not None:  # the usual name: <scope>/<role>
        return scope, role, []
    parts = name.split("/")
    for i in range(len(parts) - 2, -1, -1):
        role = _ROLE_NAMES.get(parts[i])
        if role is not None:
            return "/".join(parts[:i]), role, parts[i + 1 :]
    return None


def _join_debias_shadows(scopes: dict[str, dict[str, Variable]]) -> None:
    """Move zero-debias shadows (a scope holding only ``moving_mean/biased``, ``.../local_step``) to the layer
    of their statistic, which TensorFlow may have built in another scope (:func:`debiased_statistic`)."""
    shadows = [scope for scope, members in scopes.items() if members and all("/" in role for role in members)]
    if not shadows:
        return
    statistics = {f"{scope}/{role}": scope for scope, members in scopes.items() for role in members if "/" not in role}
    for scope in shadows:
        for role in list(scopes[scope]):
            statistic = debiased_statistic(f"{scope}/{role.partition('/')[0]}", statistics)
            if statistic is not None and statistics[statistic] != scope:
                scopes[statistics[statistic]].setdefault(role, scopes[scope].pop(role))
        if not scopes[scope]:
            del scopes[scope]


def _with_slots(variable: Variable, found: dict[str, Variable] | None) -> Variable:
    """``variable`` with the slots grouping found for it by name (the reader's own come first)."""
    if not found:
        return variable
    return replace(variable, slots={**found, **variable.slots})


def group_layers(model: ModelFile) -> Grouping:
    """The BN layers of ``model``: by names, then (when a graph was read) by the graph's structure."""
    scopes: dict[str, dict[str, Variable]] = {}
    slotted: list[tuple[str, str, str, Variable]] = []
    slots: Slots = {}
    for variable in _optimizer_slots(model.variables, slots):
        split = _split(variable.name)
        if split is None:
            continue
        scope, role, rest = split
        if not rest:
            scopes.setdefault(scope, {})[role] = variable
        elif len(rest) == 1 and rest[0] in ZERO_DEBIAS and role.startswith("moving_"):
            scopes.setdefault(scope, {})[f"{role}/{rest[0]}"] = variable
        else:
            slotted.append((scope, role, "/".join(rest), variable))
    _join_debias_shadows(scopes)
    for scope, role, slot_name, variable in slotted:
        owner = scopes.get(scope, {}).get(role)
        if owner is not None:
            slots.setdefault(owner, {}).setdefault(slot_name, variable)

    slotted_variables = {variable: _with_slots(variable, found) for variable, found in slots.items()}
    numbers = model.graph.numbers_by_scope() if model.graph is not None else {}
    layers, unconfirmed = [], []
    for scope in sorted(scopes, key=natural_key):
        members = scopes[scope]
        if slotted_variables:  # (most files: no slots found by name)
            members = {role: slotted_variables.get(variable, variable) for role, variable in members.items()}
        name = scope or "(root)"
        hints = model.hints.get(name, NO_HINTS)
        if not hints.is_bn:
            continue
        has_stats = not _AFFINE.issuperset(members)
        leaf = scope.rsplit("/", 1)[-1]
        if has_stats or name in model.hints or name in numbers or BN_NAME.search(leaf):
            layers.append(BNLayer(name, members, hints))
        elif not OTHER_NORM_NAME.search(leaf):
            unconfirmed.append(name)
    if model.structure is None:
        return Grouping(layers, unconfirmed)
    from .reconcile import apply_structure  # a graph was read: its structure decides

    variables = [slotted_variables.get(variable, variable) for variable in model.variables]
    layers, notes = apply_structure(layers, variables, model, numbers)
    return Grouping(layers, unconfirmed, notes)
