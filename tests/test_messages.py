"""Causes and fixes in the words of the file's framework; model-wide conditions said once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import bncheck
from bncheck.facts import Framework
from bncheck.rules import RULES

from .conftest import FIXTURES, run_cli

# a fixture whose layers trained without their statistics (BN002), who wrote it, and words its fix must use
NEVER_UPDATED = [
    ("tf1_no_control_deps", Framework.TF1, "control_dependencies(UPDATE_OPS)"),
    ("tf2_custom_loop_no_training", Framework.TF2, "training=True in the training step (GradientTape loop)"),
    ("keras/k3_custom_loop_no_training/model.keras", Framework.KERAS, "self(x, training=True)"),
    ("keras/tfk_custom_loop_no_training/model.h5", Framework.KERAS, "self(x, training=True)"),
    ("graphs/onnx/untouched_stats.onnx", Framework.ONNX, "model.train()"),
]


@pytest.mark.parametrize(("relative", "framework", "words"), NEVER_UPDATED)
def test_bn002_fix_is_spelled_for_the_framework_that_wrote_the_file(
    relative: str, framework: Framework, words: str
) -> None:
    report = bncheck.inspect(str(FIXTURES / relative))
    assert report.framework == framework
    fixes = {f.fix for f in report.findings if f.code == "BN002"}
    assert fixes == {RULES["BN002"].fix_for(framework)}
    (fix,) = fixes
    assert words in fix
    if framework != Framework.TF1:
        assert "UPDATE_OPS" not in fix  # no graph-mode wiring to add outside TF1


def test_every_json_finding_carries_its_fix() -> None:
    result = run_cli("inspect", "--format", "json", str(FIXTURES / "tf2_custom_loop_no_training"))
    (file,) = json.loads(result.stdout)["files"]
    assert file["framework"] == "TF2"
    assert file["findings"] and all(f["fix"] == RULES[f["code"]].fix_for(Framework.TF2) for f in file["findings"])


def test_rules_documentation_keeps_every_spelling() -> None:
    text = run_cli("rules", "BN002").stdout
    for framework in Framework:
        assert f"{framework.label}: {RULES['BN002'].fixes[framework]}" in text
    assert "In short: " + RULES["BN002"].fix in text


def test_an_untrained_model_is_stated_once_and_kept_per_layer() -> None:
    result = run_cli("inspect", "--format", "json", str(FIXTURES / "tf1_untrained"))
    (file,) = json.loads(result.stdout)["files"]
    assert [f["code"] for f in file["findings"]] == ["BN003"] * 3  # one per layer: baselines match on layers
    (statement,) = file["statements"]
    assert statement["code"] == "BN003" and statement["layers"] == 3
    assert "the whole model looks untrained" in statement["message"]
    github = run_cli("inspect", "--format", "github", str(FIXTURES / "tf1_untrained")).stdout.splitlines()
    assert sum(line.startswith("::warning") for line in github) == 3
    assert sum("title=BN003 on all 3 BN layers" in line for line in github) == 1
    sarif = json.loads(run_cli("inspect", "--format", "sarif", str(FIXTURES / "tf1_untrained")).stdout)
    (run,) = sarif["runs"]
    assert len(run["results"]) == 3 and [s["ruleId"] for s in run["properties"]["statements"]] == ["BN003"]


def test_a_condition_of_some_layers_is_no_statement() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_nan_negvar"))
    assert report.findings and report.statements == []


def test_a_large_untrained_model_is_one_statement_not_a_row_per_layer(tmp_path: Path) -> None:
    """45 BN layers at their initial values (written by TensorFlow): no row and no list of 45 warnings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    names, tensors = ["global_step"], [tf.constant(0, tf.int64)]
    for i in range(45):
        for role, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0), ("moving_variance", 1.0)):
            names.append(f"block{i}/batch_normalization/{role}")
            tensors.append(tf.fill([16], value))
    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "model.ckpt"), tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    result = run_cli("inspect", str(tmp_path / "model.ckpt"), env={"COLUMNS": "200"})
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "... 45 layers without findings other than the model-wide ones (--all lists them)" in lines
    assert not any(line.startswith("block") for line in lines)  # no table row
    assert sum("the whole model looks untrained" in line for line in lines) == 2  # the statement and one example
    assert "  ... and 44 more (--all lists them)" in lines
    assert (
        sum(
            line.startswith("block")
            for line in run_cli("inspect", "--all", str(tmp_path / "model.ckpt")).stdout.splitlines()
        )
        >= 45
    )
