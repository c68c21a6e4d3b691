"""The graph reader on small graphs built in code, one per graph shape TensorFlow versions produced
(tests/graphdefs.py says which version and which API wrote each), so that its correctness does
not rest on the one TensorFlow version that writes the fixtures."""

from __future__ import annotations

import pytest

from bncheck.facts import GraphFacts, GraphLayer
from bncheck.readers.graph import GraphIndex, tensor_name
from bncheck.readers.metagraph import digest
from bncheck.readers.structure import find_bn_layers

from . import graphdefs
from .graphdefs import ROLES, Graph


def layers(g: Graph) -> list[GraphLayer]:
    return find_bn_layers(GraphIndex.of(g.graph_def))


def facts(g: Graph) -> GraphFacts:
    return digest(g.meta, "train.meta")


def members(scope: str) -> dict[str, str]:
    return {role: f"{scope}/{role}" for role in ROLES}


@pytest.mark.parametrize("op", ["FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"])
def test_fused_training_op_with_empty_constants_takes_the_statistics_its_outputs_are_averaged_into(op: str) -> None:
    (layer,) = layers(graphdefs.slim_fused_tf14(op))
    assert layer.members == members("BatchNorm")  # not moving_mean twice (the empty constants are no variable)
    assert layer.epsilon == pytest.approx(1.001e-5)
    assert layer.updates == {
        "moving_mean": "net/batch_norm1/BatchNorm/AssignMovingAvg",
        "moving_variance": "net/batch_norm1/BatchNorm/AssignMovingAvg_1",
    }


def test_slim_updates_in_place_run_with_the_train_op() -> None:
    found = facts(graphdefs.slim_fused_tf14())
    for role in ("moving_mean", "moving_variance"):
        variable = found.variables[f"BatchNorm/{role}"]
        assert variable.update_ops and variable.updates_run and not variable.updates_collected
        assert variable.momentum == pytest.approx(0.9)  # the graph stores 1 - decay = 0.1


def test_slim_updates_in_update_ops_without_the_control_dependency_are_not_run() -> None:
    found = facts(graphdefs.slim_fused_tf14("FusedBatchNormV2", updates_wired=False))
    variable = found.variables["BatchNorm/moving_variance"]
    assert variable.updates_collected and not variable.updates_run


def test_tf1_cond_around_the_learning_phase_is_one_layer() -> None:
    """Both FusedBatchNorm ops of the cond (training: empty constants; inference: reads through Switch)."""
    (layer,) = layers(graphdefs.keras_cond_tf113())
    assert layer.name == "batch_normalization_v1"
    assert layer.members == members("batch_normalization_v1")
    assert layer.epsilon == pytest.approx(1e-3)


def test_keras_updates_in_a_tf1_graph_are_neither_collected_nor_run() -> None:
    found = facts(graphdefs.keras_cond_tf113())
    variable = found.variables["batch_normalization_v1/moving_mean"]
    assert variable.update_ops == ("batch_normalization_v1/AssignMovingAvg/AssignSubVariableOp",)
    assert not variable.updates_run and not variable.updates_collected
    # momentum = cond(learning_phase, 0.99, 1.0): not a constant, but the placeholder it hangs on
    assert variable.momentum is None and variable.decay_placeholder == "batch_normalization_v1/keras_learning_phase"


def test_unfused_tf10_layers_through_merge_of_moving_and_batch_statistics() -> None:
    (layer,) = layers(graphdefs.layers_unfused_tf10())
    assert layer.members == members("batch_normalization")
    assert layer.epsilon == pytest.approx(1e-3)
    found = facts(graphdefs.layers_unfused_tf10())
    for role in ("moving_mean", "moving_variance"):
        variable = found.variables[f"batch_normalization/{role}"]
        assert variable.updates_collected and variable.updates_run


@pytest.mark.parametrize("version", ["1.4", "2"])
def test_zero_debiased_mean_is_the_statistic_not_its_shadow(version: str) -> None:
    (layer,) = layers(graphdefs.zero_debias(version))
    assert layer.members == members("BatchNorm")  # not BatchNorm/moving_mean/biased
    assert layer.updates["moving_mean"].startswith("BatchNorm/AssignMovingAvg")
    found = facts(graphdefs.zero_debias(version))
    mean = found.variables["BatchNorm/moving_mean"]
    assert mean.updates_run and mean.momentum == pytest.approx(0.999)  # the decay of its shadow's update


def test_a_merge_of_two_constants_is_no_constant() -> None:
    g = graphdefs.keras_cond_tf113(momentum=0.5)
    index = GraphIndex.of(g.graph_def)
    assert index.scalar("batch_normalization_v1/cond_1/Merge") is None
    assert index.scalar("batch_normalization_v1/AssignMovingAvg/sub/x") == 1.0


@pytest.mark.parametrize(
    ("ref", "tensor"),
    [("a", "a:0"), ("a:0", "a:0"), ("^a", "a:0"), ("a:2", "a:2"), ("bn:batch_mean:0", "bn:1"), ("bn:y:0", "bn:0")],
)
def test_one_spelling_per_tensor(ref: str, tensor: str) -> None:
    assert tensor_name(ref) == tensor
