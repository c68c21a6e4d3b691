"""Grouping on variables built in code: slots found by name stay with their variable whichever reading, names or
a graph's structure, makes the layer; the readers' variables are not changed."""

from __future__ import annotations

import numpy as np

from bncheck.facts import GraphLayer, ModelFile, Variable
from bncheck.grouping import group_layers


def _variables(*names: str) -> tuple[Variable, ...]:
    return tuple(Variable(name, name, "float32", (3,), lambda key: np.ones(3, "float32")) for name in names)


def test_slots_found_by_name_reach_a_layer_found_by_structure() -> None:
    """conv/mu does not say moving_mean: only the graph's structure says which role it is."""
    variables = _variables("conv/mu", "conv/sigma", "conv/gamma", "conv/beta", "Adam/m/conv/mu")
    roles = {"gamma": "conv/gamma", "beta": "conv/beta", "moving_mean": "conv/mu", "moving_variance": "conv/sigma"}
    model = ModelFile("m", "test", variables, structure=(GraphLayer("conv", roles),))
    (layer,) = group_layers(model).layers
    assert [slot.name for slot in layer.variables["moving_mean"].slots.values()] == ["Adam/m/conv/mu"]
    assert all(not variable.slots for variable in variables)  # new Variables carry them


def test_slots_found_by_name_reach_a_layer_found_by_name() -> None:
    variables = _variables("bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance", "bn/moving_mean/Momentum")
    (layer,) = group_layers(ModelFile("m", "test", variables)).layers
    assert list(layer.variables["moving_mean"].slots) == ["Momentum"]
    assert all(not variable.slots for variable in variables)
