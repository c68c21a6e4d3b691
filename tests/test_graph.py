"""Root causes from the training graph (.meta, TF1 SavedModel): BN101-BN105 and causes in BN001/BN002."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import bncheck
from bncheck.readers.metagraph import read_graph
from bncheck.readers.proto import tf_subset_pb2 as pb

from .conftest import FIXTURES, SCENARIOS, prefix_of, realworld, run_cli
from .test_scenarios import BN, EXPECTED, GRAPH_EXPECTED

WITH_META = [s for s in SCENARIOS if any((FIXTURES / s).glob("*.meta"))]
SAVED_MODEL = FIXTURES / "tf1_savedmodel_no_control_deps"
DENOISE = "denoise_bn_bug_index_meta/models/trained"


def graph_findings(report: bncheck.model.Report) -> set[tuple[str, str]]:
    return {(f.code, f.layer) for f in report.findings if f.code.startswith("BN1")}


def message(report: bncheck.model.Report, code: str, layer: str = BN[0]) -> str:
    (found,) = [f.message for f in report.findings if f.code == code and f.layer == layer]
    return found


def test_every_tf1_fixture_with_a_graph_is_covered() -> None:
    assert len(WITH_META) >= 15 and set(GRAPH_EXPECTED) <= set(WITH_META)


@pytest.mark.parametrize("scenario", WITH_META)
def test_graph_findings_match_the_story(scenario: str) -> None:
    report = bncheck.inspect(str(FIXTURES / scenario))
    assert graph_findings(report) == GRAPH_EXPECTED.get(scenario, set())


@pytest.mark.parametrize("scenario", WITH_META)
def test_without_the_graph_only_the_value_findings_remain(scenario: str) -> None:
    report = bncheck.inspect(str(FIXTURES / scenario), graph=False)
    assert {(f.code, f.layer) for f in report.findings} == EXPECTED[scenario]


def test_bn002_names_the_missing_control_dependency() -> None:
    text = message(bncheck.inspect(str(FIXTURES / "tf1_no_control_deps")), "BN002")
    assert "cause: train op `GradientDescent` does not depend on `batch_normalization/AssignMovingAvg`" in text
    assert "tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))" in text


def test_bn002_names_the_uncollected_keras_updates() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_keras_bn_in_graph"))
    text = message(report, "BN002", BN[2])
    assert "`batch_normalization_2/AssignMovingAvg` (+1 more) are not in UPDATE_OPS" in text
    assert "model.updates" in text
    assert report.codes(BN[2]) == ["BN002", "BN102", "BN103"]


@pytest.mark.parametrize("scenario", ["tf1_training_false", "tf1_learning_phase0_before"])
def test_bn002_names_the_inference_mode_build(scenario: str) -> None:
    text = message(bncheck.inspect(str(FIXTURES / scenario)), "BN002")
    assert "cause: the training graph has no update ops for this layer (built with training=False" in text


def test_unfed_learning_phase_is_a_likely_cause_not_a_finding() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_learning_phase0_after"))
    assert graph_findings(report) == set()
    text = message(report, "BN002")
    assert "likely cause: the update ops run, but their momentum depends on `keras_learning_phase`" in text


def test_bn001_names_the_saver() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_saver_trainable_only"))
    assert "cause: the graph's Saver (save/SaveV2) does not save them" in message(report, "BN001")
    assert message(report, "BN104") == "the graph's Saver (save/SaveV2) does not save moving_mean and moving_variance"


def test_healthy_graph_adds_no_cause_to_value_findings() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_barely_updated"))
    assert all("cause" not in f.message for f in report.findings)


def test_saver_facts_agree_with_tensorflow() -> None:
    """The oracle: a variable the digest calls saved is exactly one TensorFlow finds in the checkpoint."""
    tf = pytest.importorskip("tensorflow")
    for scenario in ("tf1_correct", "tf1_saver_trainable_only", "tf1_two_shards", "tf1_partitioned"):
        prefix = prefix_of(FIXTURES / scenario)
        keys = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
        facts = read_graph(Path(prefix + ".meta"))
        assert facts is not None and facts.saver
        assert {n for n, v in facts.variables.items() if v.saved} == keys, scenario


def test_momentum_and_epsilon_come_from_the_graph() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_barely_updated"))
    assert {(layer.hints.momentum, layer.hints.epsilon) for layer in report.layers} == {(0.999, 0.001)}
    assert "momentum 0.999 (recorded in the file)" in message(report, "BN006")
    slim = bncheck.inspect(str(realworld("svhn_slim_index_meta/checkpoint")))
    assert {layer.hints.epsilon for layer in slim.layers} == {1.001e-05}


# --------------------------------------------------------------------------- command line


def _copy_without_meta(scenario: str, target: Path) -> str:
    prefix = Path(prefix_of(FIXTURES / scenario))
    for file in prefix.parent.glob(prefix.name + ".*"):
        if file.suffix != ".meta":
            shutil.copy(file, target)
    return str(target / prefix.name)


def _codes(stdout: str) -> set[str]:
    (file,) = json.loads(stdout)["files"]
    return {f["code"] for f in file["findings"]}


def test_meta_option_names_the_graph(tmp_path: Path) -> None:
    prefix = _copy_without_meta("tf1_no_control_deps", tmp_path)
    alone = run_cli("inspect", "--format", "json", prefix)
    assert _codes(alone.stdout) == {"BN002"}
    meta = prefix_of(FIXTURES / "tf1_no_control_deps") + ".meta"
    named = run_cli("inspect", "--format", "json", "--meta", meta, prefix)
    assert named.returncode == 1 and _codes(named.stdout) == {"BN002", "BN102"}


def test_no_graph_option_ignores_the_graph() -> None:
    result = run_cli("inspect", "--format", "json", "--no-graph", str(FIXTURES / "tf1_keras_bn_in_graph"))
    assert result.returncode == 1 and _codes(result.stdout) == {"BN002"}


def test_a_meta_that_is_not_a_meta_graph_is_exit_2(tmp_path: Path) -> None:
    prefix = _copy_without_meta("tf1_correct", tmp_path)
    shutil.copy(prefix + ".index", prefix + ".meta")
    result = run_cli("inspect", prefix)
    assert result.returncode == 2
    assert f"{prefix}.meta: not a TensorFlow MetaGraphDef" in result.stderr and "--no-graph" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("inspect", "--no-graph", prefix).returncode == 0


@pytest.mark.parametrize(
    "args",
    [("--meta", "missing.meta", str(FIXTURES / "tf1_correct")), ("--meta", "x.meta", "a", "b")],
    ids=["missing-file", "two-paths"],
)
def test_bad_meta_usage_is_exit_2(args: tuple[str, ...]) -> None:
    result = run_cli("inspect", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--meta" in result.stderr


# --------------------------------------------------------------------------- SavedModel


def test_tf1_saved_model_uses_its_train_meta_graph() -> None:
    report = bncheck.inspect(str(SAVED_MODEL))
    assert report.format.startswith("SavedModel")
    assert {(f.code, f.layer) for f in report.findings} == {(c, layer) for c in ("BN002", "BN102") for layer in BN}
    assert "`GradientDescent` does not depend on" in message(report, "BN002")


def test_saved_model_without_a_train_meta_graph_has_no_graph_findings(tmp_path: Path) -> None:
    saved = pb.SavedModel.FromString((SAVED_MODEL / "saved_model.pb").read_bytes())
    assert [list(m.meta_info_def.tags) for m in saved.meta_graphs] == [["train"], ["serve"]]
    del saved.meta_graphs[0]
    (tmp_path / "saved_model.pb").write_bytes(saved.SerializeToString())
    shutil.copytree(SAVED_MODEL / "variables", tmp_path / "variables")
    report = bncheck.inspect(str(tmp_path))
    assert {(f.code, f.layer) for f in report.findings} == {("BN002", layer) for layer in BN}


# --------------------------------------------------------------------------- real-world graphs (sets 1, 10, 11)


def test_slim_graph_with_updates_as_control_dependencies_is_healthy() -> None:
    """Set 10: op scopes differ from variable scopes; updates_collections=None feeds the Adam train op."""
    report = bncheck.inspect(str(realworld("svhn_slim_index_meta/checkpoint")))
    assert [layer.name for layer in report.layers] == ["BatchNorm", "BatchNorm_1", "BatchNorm_2"]
    assert report.findings == [] and report.errors  # the data shard is missing: exit 2, still judged
    facts = read_graph(Path(realworld("svhn_slim_index_meta/checkpoint/model.ckpt.meta")))
    assert facts is not None
    stats = facts.variables["BatchNorm/moving_mean"]
    assert stats.update_ops == ("svhn_classifier/batch_norm1/BatchNorm/AssignMovingAvg",) and stats.updates_run


def test_denoise_dncnn_updates_never_run() -> None:
    """Set 11: tf.keras BN in a TF1 graph, no update_ops collection; index + meta only."""
    result = run_cli("inspect", "--format", "json", str(realworld(f"{DENOISE}/dncnn.ckpt")))
    assert result.returncode == 2 and "data file missing" in result.stderr
    (file,) = json.loads(result.stdout)["files"]
    assert len(file["layers"]) == 15
    assert all(layer["codes"] == ["BN102", "BN103"] for layer in file["layers"])


def test_denoise_mmd_gan_splits_keras_and_tf_layers() -> None:
    """Generator: tf.keras BN whose updates nothing runs; discriminator: tf.layers BN built with training=False."""
    report = bncheck.inspect(str(realworld(f"{DENOISE}/mmd_gan.ckpt")))
    generator = {layer.name for layer in report.layers if layer.name.startswith("generator/")}
    others = {layer.name for layer in report.layers} - generator
    assert len(generator) == 15 and len(others) == 12
    assert graph_findings(report) == (
        {("BN102", n) for n in generator} | {("BN103", n) for n in generator} | {("BN101", n) for n in others}
    )


def test_anonymous_bn_graph_is_grouped_by_structure() -> None:
    """Set 1: hand-made BN (Variable_N): the graph's structure finds both layers and their hand-written updates."""
    report = bncheck.inspect(str(realworld("bn_r2rt_mnist")))
    assert [layer.name for layer in report.layers] == ["batchnorm", "batchnorm_1"] and report.findings == []
    assert bncheck.inspect(str(realworld("bn_r2rt_mnist")), graph=False).layers == []  # names say nothing
