"""TF1 training graphs of every shape the graph reader must understand, written by TensorFlow
(fixtures/make_tf1_shape_fixtures.py tells each story), and the verdicts that depend on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bncheck
from bncheck.findings import Severity

from .conftest import FIXTURES, run_cli

SHAPES = FIXTURES / "graphs" / "tf1_shapes"
ROLES = ("gamma", "beta", "moving_mean", "moving_variance")


def findings(report: bncheck.report.Report) -> set[tuple[str, Severity]]:
    return {(f.code, f.severity) for f in report.findings}


@pytest.mark.parametrize("story", ["cond_v2_unfused", "hand_cond_v1", "hand_cond_v2", "slim_zero_debias"])
def test_healthy_shapes_are_one_layer_without_findings(story: str) -> None:
    result = run_cli("inspect", str(SHAPES / story))
    assert result.returncode == 0, result.stdout + result.stderr
    report = bncheck.inspect(str(SHAPES / story))
    (layer,) = report.layers
    assert set(ROLES) <= layer.variables.keys() and report.findings == [] and report.notes == []


def test_a_cond_v2_branch_averaging_into_outer_variables() -> None:
    (layer,) = bncheck.inspect(str(SHAPES / "cond_v2_unfused")).layers
    assert {role: layer.variables[role].name for role in ROLES} == {r: f"batch_normalization/{r}" for r in ROLES}


def test_hand_written_updates_under_a_cond_count_as_update_ops() -> None:
    for story in ("hand_cond_v1", "hand_cond_v2"):
        report = bncheck.inspect(str(SHAPES / story))
        (layer,) = report.layers
        graph = report_graph(story)
        for role in ("moving_mean", "moving_variance"):
            variable = graph.variables[layer.variables[role].name]
            assert variable.update_ops and variable.updates_run, (story, role)


def report_graph(story: str) -> bncheck.model.GraphFacts:
    from bncheck.readers import open_with_graph

    checkpoint = open_with_graph(str(SHAPES / story / "model.ckpt"))
    assert checkpoint.graph is not None
    return checkpoint.graph


def test_a_slim_zero_debias_shadow_belongs_to_its_statistic() -> None:
    """slim builds the shadow of BatchNorm/moving_mean as BatchNorm/BatchNorm/moving_mean/biased."""
    report = bncheck.inspect(str(SHAPES / "slim_zero_debias"))
    (layer,) = report.layers
    assert layer.name == "BatchNorm" and layer.variables["moving_mean"].name == "BatchNorm/moving_mean"
    assert layer.variables["moving_mean/biased"].name == "BatchNorm/BatchNorm/moving_mean/biased"
    assert layer.hints.momentum == pytest.approx(0.9)


def test_updates_behind_a_cond_in_update_ops_are_collected() -> None:
    """tf.compat.v1.layers with a training placeholder (control flow v1): UPDATE_OPS holds the cond's Merge."""
    report = bncheck.inspect(str(SHAPES / "layers_unfused_cond_v1_unwired"))
    assert findings(report) == {("BN002", Severity.ERROR), ("BN102", Severity.ERROR)}
    (cause,) = [f.message for f in report.findings if f.code == "BN002"]
    assert "wrap `minimize` in `tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))`" in cause


def test_a_fine_tune_whose_statistics_moved_is_a_warning_not_an_error() -> None:
    report = bncheck.inspect(str(SHAPES / "finetune_unwired"))
    (finding,) = report.findings
    assert (finding.code, finding.severity) == ("BN102", Severity.WARNING)
    assert "the statistics this training started from (a fine-tune)" in finding.message
    assert run_cli("inspect", str(SHAPES / "finetune_unwired")).returncode == 0
    assert run_cli("inspect", "--fail-on", "warning", str(SHAPES / "finetune_unwired")).returncode == 1


def test_statistics_trained_by_gradient_keep_the_graph_error() -> None:
    """They moved, but an optimizer moved them (slots, trainable): BN101 stays an error."""
    report = bncheck.inspect(str(FIXTURES / "tf1_stats_trained_by_gradient"))
    assert {f.severity for f in report.findings if f.code == "BN101"} == {Severity.ERROR}
    assert run_cli("inspect", str(FIXTURES / "tf1_stats_trained_by_gradient")).returncode == 1


def _save(directory: Path, tensors: dict[str, np.ndarray]) -> str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    prefix = str(directory / "model.ckpt")
    names = list(tensors)
    values = [tf.constant(tensors[name]) for name in names]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values)
    return prefix


def test_a_statement_needs_the_same_condition_in_every_layer(tmp_path: Path) -> None:
    zeros, ones = np.zeros(8, np.float32), np.ones(8, np.float32)
    untouched = {"global_step": np.int64(100)}
    for scope in ("batch_normalization", "batch_normalization_1"):
        untouched |= {f"{scope}/gamma": ones, f"{scope}/beta": zeros}
        untouched |= {f"{scope}/moving_mean": zeros, f"{scope}/moving_variance": ones}
    (tmp_path / "untouched").mkdir()
    report = bncheck.inspect(_save(tmp_path / "untouched", untouched))
    assert {f.code for f in report.findings} == {"BN003"}  # "the model trained ... but not this layer"
    assert report.statements == []  # not "the whole model looks untrained"
    mixed = {
        "global_step": np.int64(100),
        "batch_normalization/gamma": ones * 1.1,
        "batch_normalization/moving_mean": zeros + 0.3,
    }
    mixed |= {"batch_normalization_1/gamma": ones * 1.1, "batch_normalization_1/moving_variance": ones * 2}
    (tmp_path / "mixed").mkdir()
    report = bncheck.inspect(_save(tmp_path / "mixed", mixed))
    assert {f.code for f in report.findings} == {"BN001"}  # one lacks the variance, the other the mean
    assert report.statements == []


SAVER_OF_TRAINABLES = """
import sys
import numpy as np, tensorflow as tf
tf1 = tf.compat.v1
tf1.disable_eager_execution()
x = tf1.placeholder(tf.float32, [None, 4])
h = tf1.layers.batch_normalization(tf1.layers.dense(x, 3, name="dense"), training=True, name="a_norm")
h = tf1.layers.batch_normalization(h, training=True, name="bn_2")
with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
    train = tf1.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_mean(h * h))
with tf1.Session() as session:
    session.run(tf1.global_variables_initializer())
    session.run(train, {x: np.random.RandomState(0).randn(8, 4)})
    tf1.train.Saver(var_list=tf1.trainable_variables()).save(session, sys.argv[1])
"""


def test_a_scope_the_graph_shows_as_bn_is_a_layer_under_any_name(tmp_path: Path) -> None:
    """Saved by a Saver of the trainable variables, a BN layer named a_norm holds gamma/beta only: its name does
    not say batch norm, the graph's update ops do. It is a layer in its place, not an unconfirmed scope."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    prefix = str(tmp_path / "model.ckpt")
    subprocess.run([sys.executable, "-c", SAVER_OF_TRAINABLES, prefix], check=True, env=env, capture_output=True)
    report = bncheck.inspect(prefix)
    assert [layer.name for layer in report.layers] == ["a_norm", "bn_2"]
    assert not any("without moving statistics" in note for note in report.notes), report.notes
    assert {(f.code, f.layer) for f in report.findings} >= {("BN001", "a_norm"), ("BN104", "a_norm")}
