"""Every fixture story gives exactly the findings it predicts (fixtures/make_fixtures.py)."""

from __future__ import annotations

import pytest

import bncheck
from bncheck.findings import Severity

from .conftest import FIXTURES, SCENARIOS

BN = ("batch_normalization", "batch_normalization_1", "batch_normalization_2")


def each(code: str, layers: tuple[str, ...] = BN) -> set[tuple[str, str]]:
    return {(code, layer) for layer in layers}


EXPECTED: dict[str, set[tuple[str, str]]] = {
    "tf1_correct": set(),
    "tf1_no_control_deps": each("BN002"),
    "tf1_training_false": each("BN002"),
    "tf1_learning_phase0_before": each("BN002", BN[:2]),
    "tf1_learning_phase0_after": each("BN002", BN[:2]),
    "tf1_keras_bn_in_graph": each("BN002"),
    "tf1_saver_trainable_only": each("BN001"),
    "tf1_nan_negvar": {("BN004", BN[0]), ("BN005", BN[1]), ("BN005", BN[2])},
    "tf1_slim_names": set(),
    "tf1_renorm": set(),
    "tf1_two_shards": set(),
    "tf1_many_vars": set(),
    "tf1_partitioned": set(),
    "tf1_dtypes": set(),
    "tf1_ema_slots": set(),
    "tf1_stats_trained_by_gradient": each("BN012"),
    "tf1_barely_updated": each("BN006"),
    "tf1_untrained": each("BN003"),
    "tf1_value_oddities": {
        ("BN007", "amplified/batch_normalization"),
        ("BN008", "outlier/batch_normalization"),
        ("BN009", "copy_b/batch_normalization"),
        ("BN010", "dead/batch_normalization"),
        ("BN011", "mismatch/batch_normalization"),
    },
    "tf1_no_step_plain_bn": each("BN002", ("bn_plain", "bn_scaled")),
    "tf2_custom_loop_no_training": each("BN002", ("bn1", "bn2")),
    "tf2_fit": set(),
    "tf2_keras2_fit": set(),
    "tf2_keras2_fit_legacy_optimizer": set(),
}

# What the training graph (.meta beside the checkpoint) adds: the causes (tests/test_graph.py).
GRAPH_EXPECTED: dict[str, set[tuple[str, str]]] = {
    "tf1_no_control_deps": each("BN102"),
    "tf1_training_false": each("BN101"),
    "tf1_learning_phase0_before": each("BN101", BN[:2]),
    "tf1_keras_bn_in_graph": each("BN102") | each("BN103"),
    "tf1_saver_trainable_only": each("BN104"),
    "tf1_stats_trained_by_gradient": each("BN101") | each("BN105"),
    "tf1_no_step_plain_bn": each("BN102", ("bn_plain", "bn_scaled")),
}


def test_every_fixture_has_a_prediction() -> None:
    assert set(SCENARIOS) == set(EXPECTED)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_findings_match_the_story(scenario: str) -> None:
    report = bncheck.inspect(str(FIXTURES / scenario))
    assert not report.errors
    assert {(f.code, f.layer) for f in report.findings} == EXPECTED[scenario] | GRAPH_EXPECTED.get(scenario, set())


def test_zero_variance_is_a_warning_negative_an_error() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_nan_negvar"))
    severity = {f.layer: f.severity for f in report.findings if f.code == "BN005"}
    assert severity == {BN[1]: Severity.ERROR, BN[2]: Severity.WARNING}


def test_layer_counts_and_roles() -> None:
    slim = bncheck.inspect(str(FIXTURES / "tf1_slim_names"))
    assert [layer.name for layer in slim.layers] == ["conv1/BatchNorm", "conv2/BatchNorm", "fc/BatchNorm"]
    assert all("gamma" not in layer.variables and "beta" in layer.variables for layer in slim.layers)
    renorm = bncheck.inspect(str(FIXTURES / "tf1_renorm"))
    assert len(renorm.layers) == 3
    assert {"renorm_mean", "renorm_stddev", "moving_stddev"} <= set(renorm.layers[0].variables)


def test_slots_and_shadows_are_attached_not_counted() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_ema_slots"))
    assert [layer.name for layer in report.layers] == list(BN)
    gamma = report.layers[0].variables["gamma"]
    assert {"Adam", "Adam_1", "ExponentialMovingAverage"} <= set(gamma.slots)


def test_keras3_checkpoint_joins_optimizer_and_model_paths() -> None:
    """gamma/beta stored under optimizer/_trainable_variables, stats under model/_operations."""
    report = bncheck.inspect(str(FIXTURES / "tf2_custom_loop_no_training"))
    assert [layer.name for layer in report.layers] == ["bn1", "bn2"]
    keys = {role: v.key for role, v in report.layers[0].variables.items()}
    assert keys["gamma"].startswith("optimizer/") and keys["moving_mean"].startswith("model/")
    assert report.step.count == 12


def test_layer_normalization_is_not_a_bn_layer() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf2_fit"))
    assert [layer.name for layer in report.layers] == ["bn1", "bn2"]
