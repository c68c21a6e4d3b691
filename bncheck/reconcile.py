"""Join the BN layers a graph's structure shows with the layers the variable names suggest.

With a graph, structure decides: each layer it finds becomes one BNLayer with the roles it
traced (and the epsilon it read). Names still name a layer and bring its extras (renorm,
zero-debias) when one name-based layer holds the same variables. A layer found only by
name stays. Where the two readings disagree (a role, or variables of two name-based layers
in one structural layer), the structural reading is used and the disagreement becomes a
note: it is shown, never hidden.

An inference graph's verdict that a layer normalises with batch statistics (``batch_statistics``:
a SavedModel signature, a frozen graph) becomes the layer's ``training_mode`` hint, for BN013.

This is also the one place that takes a layer's momentum and epsilon from a graph, where the file
itself (a Keras config) does not record them: epsilon from the op that normalises, momentum from the
decay of the ops that update the moving statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .facts import NO_HINTS, GraphLayer, LayerHints, ModelFile, Variable
from .layers import ROLES, BNLayer

Numbers = dict[str, tuple[float | None, float | None]]  # scope -> (momentum, epsilon), from a graph's ops


def apply_structure(
    layers: list[BNLayer], variables: Sequence[Variable], model: ModelFile, numbers: Numbers
) -> tuple[list[BNLayer], list[str]]:
    """The layers after joining ``model.structure`` into the name-based ``layers`` (``variables``: the model's,
    with the slots grouping found; ``numbers``: the graph's momentum and epsilon by scope), and notes on
    disagreements."""
    structure = model.structure or ()
    by_name = {v.name: v for v in variables}
    owner: dict[str, tuple[BNLayer, str]] = {}  # variable name -> (name-based layer, role)
    for layer in layers:
        for role, variable in layer.variables.items():
            owner[variable.name] = (layer, role)
    notes: list[str] = []
    replaced: dict[str, BNLayer] = {}  # name-based layer name -> its structural replacement
    added: list[BNLayer] = []
    taken = {layer.name for layer in layers}
    for found in structure:
        members = {role: by_name[name] for role, name in found.members.items() if name in by_name}
        if not members:
            if found.batch_statistics:  # never dropped unsaid
                where = "; ".join(map(str, found.batch_statistics))
                notes.append(
                    f"{found.name}: normalised with batch statistics at inference ({where}), but its variables "
                    "are not found in the file"
                )
            continue  # the graph's layer has none of its variables in this file
        touched = list(dict.fromkeys(owner[v.name][0].name for v in members.values() if v.name in owner))
        base = next((layer for layer in layers if touched and layer.name == touched[0]), None)
        notes += _disagreements(found, members, owner, touched, base if len(touched) == 1 else None)
        variables: dict[str, Variable] = {}
        if base is not None and len(touched) == 1:
            variables = {r: v for r, v in base.variables.items() if r not in ROLES or r not in found.members}
        variables.update(members)
        if base is not None and len(touched) == 1:
            name = base.name
        else:
            name = _free(found.name or found.op, taken)
            taken.add(name)
        hints = _with_numbers(model.hints.get(name, base.hints if base is not None else NO_HINTS), name, numbers)
        if hints.epsilon is None and found.epsilon is not None:
            hints = replace(hints, epsilon=found.epsilon)
        if hints.momentum is None and model.graph is not None:
            graph_variables = model.graph.variables
            stats = [found.members.get(role, "") for role in ("moving_mean", "moving_variance")]
            momenta = [graph_variables[s].momentum for s in stats if s in graph_variables]
            hints = replace(hints, momentum=next((m for m in momenta if m is not None), None))
        if found.batch_statistics:
            hints = replace(hints, training_mode=True, training_in=found.batch_statistics)
        layer = BNLayer(name, dict(sorted(variables.items(), key=lambda item: _role_order(item[0]))), hints)
        for old in touched:
            replaced.setdefault(old, layer)
        if not touched:
            added.append(layer)
    result: list[BNLayer] = []
    for layer in layers:
        new = replaced.get(layer.name)
        if new is None:
            hints = _with_numbers(layer.hints, layer.name, numbers)
            result.append(layer if hints is layer.hints else BNLayer(layer.name, layer.variables, hints))
        elif all(new is not other for other in result):
            result.append(new)
    return result + added, notes


def _with_numbers(hints: LayerHints, scope: str, numbers: Numbers) -> LayerHints:
    """``hints`` with the graph's momentum and epsilon of ``scope`` where the file records none."""
    momentum, epsilon = numbers.get(scope, (None, None))
    if (momentum is None or hints.momentum is not None) and (epsilon is None or hints.epsilon is not None):
        return hints
    return replace(
        hints,
        momentum=hints.momentum if hints.momentum is not None else momentum,
        epsilon=hints.epsilon if hints.epsilon is not None else epsilon,
    )


def _disagreements(
    found: GraphLayer,
    members: dict[str, Variable],
    owner: dict[str, tuple[BNLayer, str]],
    touched: list[str],
    base: BNLayer | None,
) -> list[str]:
    where = f"graph op {found.op}" if found.op else "the graph"
    notes = []
    if len(touched) > 1:
        notes.append(
            f"names and graph structure disagree: {where} normalises with variables of layers "
            f"{', '.join(touched)} as one BN layer; the graph's grouping is used"
        )
    for role, variable in members.items():
        if variable.name in owner and owner[variable.name][1] != role:
            notes.append(
                f"names and graph structure disagree on {variable.name}: {owner[variable.name][1]} by its name, "
                f"{role} in {where}; the graph's role is used"
            )
        named = base.variables.get(role) if base is not None else None
        if named is not None and named is not variable and variable.name not in owner:
            notes.append(
                f"names and graph structure disagree on the {role} of layer {base.name}: {named.name} by name, "
                f"{variable.name} in {where}; the graph's variable is used"
            )
    return notes


def _free(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 1
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _role_order(role: str) -> tuple[int, str]:
    return (ROLES.index(role), "") if role in ROLES else (len(ROLES), role)
