"""Model files as people have them: Git LFS pointers in place of the real file, a TF2 checkpoint without its data
shard, HDF5 files that are not Keras files (issue 13, section 4)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES, prefix_of, realworld, run_cli

LFS_FIX = "run `git lfs pull`"


# --------------------------------------------------------------------------- Git LFS pointers


def lfs_pointer(real: Path) -> bytes:
    """The pointer git-lfs commits in place of ``real`` (docs/spec.md); compared with `git lfs pointer` if there."""
    data = real.read_bytes()
    oid = hashlib.sha256(data).hexdigest()
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"
    if shutil.which("git-lfs"):
        made = subprocess.run(["git", "lfs", "pointer", "--file", str(real)], capture_output=True, check=True).stdout
        assert made == text.encode()
    return text.encode()


def as_pointer(file: Path) -> int:
    """Replace ``file`` by its Git LFS pointer, as a clone without `git lfs pull` holds it; return the real size."""
    size = file.stat().st_size
    file.write_bytes(lfs_pointer(file))
    return size


def human(size: int) -> str:
    return f"{size} bytes" if size < 1000 else f"{size / 1000:.1f} kB" if size < 10**6 else f"{size / 10**6:.1f} MB"


def copy_tree(source: Path, into: Path) -> Path:
    shutil.copytree(source, into)
    return into


def assert_pointer_error(result: subprocess.CompletedProcess[str], pointer: Path, size: int) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    expected = f"{pointer} is a Git LFS pointer (the real file, {human(size)}, was never downloaded): {LFS_FIX}"
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("keras/k3_fit/model.keras", "model.keras"),
        ("keras/k3_fit/model.weights.h5", "model.weights.h5"),
        ("keras/tfk_fit/model.h5", "model.h5"),
        ("graphs/frozen_healthy/frozen.pb", "frozen.pb"),
        ("graphs/onnx/healthy.onnx", "healthy.onnx"),
    ],
)
def test_a_model_file_that_is_an_lfs_pointer_is_named_as_such(source: str, name: str, tmp_path: Path) -> None:
    model = tmp_path / name
    shutil.copy(FIXTURES / source, model)
    size = as_pointer(model)
    assert_pointer_error(run_cli("inspect", str(model)), model, size)


def test_a_data_shard_that_is_an_lfs_pointer_keeps_the_names_and_shapes(tmp_path: Path) -> None:
    prefix = tmp_path / Path(prefix_of(FIXTURES / "tf1_correct")).name
    for file in (FIXTURES / "tf1_correct").iterdir():
        shutil.copy(file, tmp_path / file.name)
    shard = Path(f"{prefix}.data-00000-of-00001")
    size = as_pointer(shard)
    result = run_cli("inspect", str(prefix))
    assert_pointer_error(result, shard, size)
    assert "past the end" not in result.stderr + result.stdout
    assert "batch_normalization_1" in result.stdout and "not read" in result.stdout


def test_an_index_that_is_an_lfs_pointer_is_named_as_such(tmp_path: Path) -> None:
    for file in (FIXTURES / "tf1_correct").iterdir():
        shutil.copy(file, tmp_path / file.name)
    index = Path(prefix_of(tmp_path) + ".index")
    size = as_pointer(index)
    assert_pointer_error(run_cli("inspect", str(tmp_path)), index, size)


def test_saved_model_variables_that_are_lfs_pointers(tmp_path: Path) -> None:
    saved = copy_tree(FIXTURES / "keras" / "tfk_fit" / "tfsaved", tmp_path / "saved")
    shard = saved / "variables" / "variables.data-00000-of-00001"
    size = as_pointer(shard)
    result = run_cli("inspect", str(saved))
    assert_pointer_error(result, shard, size)
    index = saved / "variables" / "variables.index"
    size = as_pointer(index)
    assert_pointer_error(run_cli("inspect", str(saved)), index, size)


def test_keras_metadata_that_is_an_lfs_pointer(tmp_path: Path) -> None:
    saved = copy_tree(FIXTURES / "keras" / "tfk_fit" / "savedmodel", tmp_path / "saved")
    size = as_pointer(saved / "keras_metadata.pb")
    assert_pointer_error(run_cli("inspect", str(saved)), saved / "keras_metadata.pb", size)


def test_a_directory_scan_reports_the_pointers_it_holds(tmp_path: Path) -> None:
    """A scan finds .pb files by their first bytes: a pointer standing in for one is reported, not skipped."""
    shutil.copy(FIXTURES / "graphs" / "frozen_healthy" / "frozen.pb", tmp_path / "frozen.pb")
    shutil.copy(FIXTURES / "keras" / "k3_fit" / "model.keras", tmp_path / "model.keras")
    size = as_pointer(tmp_path / "frozen.pb")
    result = run_cli("inspect", str(tmp_path))
    assert_pointer_error(result, tmp_path / "frozen.pb", size)
    assert "model.keras" in result.stdout  # the other model is still inspected


def test_a_healthy_tiny_model_is_not_taken_for_a_pointer(tmp_path: Path) -> None:
    """Only a text with the pointer's version line, oid and size is a pointer: a short file that merely starts like
    one is the format error it always was."""
    model = tmp_path / "model.pb"
    model.write_bytes(b"version https://git-lfs.github.com/spec/v1\nthis is not a pointer\n")
    result = run_cli("inspect", str(model))
    assert result.returncode == 2 and "Git LFS" not in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- TF2 checkpoints without their data


def _inspect_json(path: Path | str) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = run_cli("inspect", str(path), "--format", "json", "--all")
    return result, json.loads(result.stdout)["files"][0]


def _without_data(source: Path, into: Path) -> Path:
    into.mkdir()
    for file in source.iterdir():
        if ".data-" not in file.name:
            shutil.copy(file, into / file.name)
    return into


KEY_PATH_NOTE = "layer names are key paths of the checkpoint"


@pytest.mark.parametrize(
    ("source", "channels"),
    [
        (FIXTURES / "tf2_keras2_fit", {"layer_with_weights-1": 8, "layer_with_weights-3": 8}),
        (FIXTURES / "tf2_keras2_fit_legacy_optimizer", {"layer_with_weights-1": 8, "layer_with_weights-3": 8}),
        ("tf2_ckpt_emg_cbam", {"layer_with_weights-1": 48, "layer_with_weights-4": 96}),
    ],
)
def test_tf2_checkpoint_without_its_data_groups_from_key_paths(source, channels: dict, tmp_path: Path) -> None:
    source = source if isinstance(source, Path) else realworld(source)
    directory = _without_data(source, tmp_path / "ckpt")
    result, report = _inspect_json(directory)
    assert result.returncode == 2
    assert "data file missing" in result.stderr and ".data-00000-of-00001" in result.stderr
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert {name: layer["channels"] for name, layer in layers.items()} == channels  # no slot or optimizer key
    for layer in layers.values():
        assert set(layer["variables"]) == {"gamma", "beta", "moving_mean", "moving_variance"}
        assert all(variable["stats"] is None for variable in layer["variables"].values())
    assert any(KEY_PATH_NOTE in note and "data file" in note for note in report["notes"])
    table = run_cli("inspect", str(directory))
    assert "layer_with_weights-1" in table.stdout and "not read" in table.stdout


def test_keras3_checkpoint_without_its_data_keeps_its_operations(tmp_path: Path) -> None:
    """Keras 3 under tf.train.Checkpoint: the statistics sit under model/_operations/N, gamma/beta under optimizer/."""
    result, report = _inspect_json(_without_data(FIXTURES / "tf2_fit", tmp_path / "ckpt"))
    assert result.returncode == 2
    assert [layer["name"] for layer in report["layers"]] == ["model/_operations/2", "model/_operations/8"]
    assert any(KEY_PATH_NOTE in note for note in report["notes"])


def test_tf2_checkpoint_whose_data_is_an_lfs_pointer_groups_from_key_paths(tmp_path: Path) -> None:
    directory = copy_tree(FIXTURES / "tf2_keras2_fit", tmp_path / "ckpt")
    shard = directory / "model.ckpt.data-00000-of-00001"
    size = as_pointer(shard)
    result = run_cli("inspect", str(directory))
    assert_pointer_error(result, shard, size)
    assert "layer_with_weights-1" in result.stdout and "layer_with_weights-3" in result.stdout
    assert "not read" in result.stdout


def test_name_and_shape_rules_run_on_key_paths(tmp_path: Path) -> None:
    """BN001, BN011 and BN012 need no values: on a TF2 checkpoint (written by TensorFlow) without its data they still
    fire, on layers named by key paths."""
    import tensorflow as tf

    class Norm(tf.Module):
        def __init__(self, channels: int, stats: int | None) -> None:
            super().__init__()
            self.gamma = tf.Variable(tf.ones([channels]))
            self.beta = tf.Variable(tf.zeros([channels]))
            if stats:
                self.moving_mean = tf.Variable(tf.zeros([stats]))
                self.moving_variance = tf.Variable(tf.ones([stats]))

    model = tf.Module()
    model.bn_lost = Norm(4, None)  # BN001: gamma/beta without statistics
    model.bn_mixed = Norm(4, 8)  # BN011: statistics of another shape
    model.bn_trained = Norm(4, 4)  # BN012: statistics trained by the optimizer
    optimizer = tf.compat.v1.train.AdamOptimizer()
    trained = [model.bn_trained.gamma, model.bn_trained.moving_mean, model.bn_trained.moving_variance]
    optimizer.apply_gradients([(tf.ones_like(v), v) for v in trained])
    tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt" / "model"))
    (tmp_path / "ckpt" / "model.data-00000-of-00001").unlink()

    result, report = _inspect_json(tmp_path / "ckpt" / "model")
    assert result.returncode == 2
    codes = {(f["code"], f["layer"]) for f in report["findings"]}
    assert codes == {("BN001", "model/bn_lost"), ("BN011", "model/bn_mixed"), ("BN012", "model/bn_trained")}
    assert any(KEY_PATH_NOTE in note for note in report["notes"])


# --------------------------------------------------------------------------- HDF5 files that are not Keras files


def _chainer_dump(h5) -> None:
    """A classifier as chainer.serializers.save_hdf5 lays it out: one group per link, a dataset per parameter or
    persistent value (BatchNormalization: gamma, beta, avg_mean, avg_var, N), gzip level 4."""
    import numpy as np

    predictor = h5.require_group("predictor")
    for name, value in {"W": np.ones((8, 3, 3, 3), "f4"), "b": np.zeros(8, "f4")}.items():
        predictor.require_group("conv1").create_dataset(name, data=value, compression=4)
    bn = predictor.require_group("bn1")
    for name, value in {
        "gamma": np.ones(8, "f4"),
        "beta": np.zeros(8, "f4"),
        "avg_mean": np.full(8, 0.1, "f4"),
        "avg_var": np.full(8, 0.9, "f4"),
        "N": np.asarray(120),
    }.items():
        bn.create_dataset(name, data=value, compression=4 if value.ndim else None)


def _layers_dataset(h5) -> None:
    h5["layers"] = [1.0, 2.0]


def _unrelated_vars(h5) -> None:
    h5["vars/images"] = [[0, 1], [2, 3]]
    h5["vars/labels"] = [0, 1]


def _empty_model_weights(h5) -> None:
    h5["model_weights/features"] = [1.0, 2.0]


def _layers_without_vars(h5) -> None:
    h5["layers/conv/kernel"] = [1.0, 2.0]
    h5["_layer_checkpoint_dependencies/conv/kernel"] = [1.0, 2.0]


NOT_KERAS = {
    "chainer": _chainer_dump,
    "empty": lambda h5: None,
    "one dataset at the root": lambda h5: h5.create_dataset("x", data=[1.0, 2.0]),
    "layers as a dataset": _layers_dataset,
    "vars group of unrelated data": _unrelated_vars,
    "model_weights without layer_names": _empty_model_weights,
    "layer containers without vars": _layers_without_vars,
}


@pytest.mark.parametrize("case", sorted(NOT_KERAS))
def test_hdf5_in_neither_keras_layout_is_refused(case: str, tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as h5:
        NOT_KERAS[case](h5)
    result = run_cli("inspect", str(path))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{path}: not a Keras file: an HDF5 file in neither Keras layout" in result.stderr, result.stderr
    assert "layer_names" in result.stderr and "vars" in result.stderr  # what it lacks
    assert "Traceback" not in result.stderr


KERAS_WITHOUT_BN = """
import os, sys
import numpy as np
legacy = sys.argv[1] == "tf_keras"
if legacy:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras
else:
    import keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
model.compile("adam", "mse")
model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=1, verbose=0)
out = sys.argv[2]
if legacy:
    model.save(os.path.join(out, "full.h5"))
    model.save_weights(os.path.join(out, "weights.h5"))
else:
    model.save(os.path.join(out, "model.keras"))
    model.save_weights(os.path.join(out, "model.weights.h5"))
    model.save(os.path.join(out, "legacy.h5"))
"""


@pytest.mark.parametrize(("keras", "files"), [("keras", ["model.keras", "model.weights.h5", "legacy.h5"]),
                                              ("tf_keras", ["full.h5", "weights.h5"])])  # fmt: skip
def test_keras_files_without_bn_are_still_read(keras: str, files: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    made = subprocess.run(
        [sys.executable, "-c", KERAS_WITHOUT_BN, keras, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0, made.stderr[-2000:]
    for name in files:
        result, report = _inspect_json(tmp_path / name)
        assert result.returncode == 0, (name, result.stderr)
        assert report["layers"] == [] and report["errors"] == [] and report["format"].startswith("Keras"), name


@pytest.mark.parametrize(
    ("scenario", "graph"),
    [
        ("tf1_correct", "model.ckpt-20.meta"),
        ("tf1_savedmodel_no_control_deps", "saved_model.pb"),
        ("tf1_correct", "checkpoint"),
    ],
)
def test_a_graph_or_state_file_that_is_an_lfs_pointer(scenario: str, graph: str, tmp_path: Path) -> None:
    directory = copy_tree(FIXTURES / scenario, tmp_path / "m")
    size = as_pointer(directory / graph)
    assert_pointer_error(run_cli("inspect", str(directory)), directory / graph, size)
