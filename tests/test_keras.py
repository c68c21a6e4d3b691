"""Keras files and SavedModel directories (fixtures/make_keras_fixtures.py): values, findings, detection.

Keras itself is the oracle: each file is loaded with ``keras.saving.load_model`` (Keras 3)
or ``tf_keras.models.load_model`` (Keras 2) and every BN variable bncheck reads must be
bit-identical to what Keras restores.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import bncheck
from bncheck.errors import BncheckError
from bncheck.facts import Step
from bncheck.findings import Severity

from .conftest import FIXTURES, realworld, run_cli

KERAS = FIXTURES / "keras"
ROLES = ("gamma", "beta", "moving_mean", "moving_variance")

# file -> {(code, layer)}: exactly the findings each story predicts (value rules)
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "k3_fit/model.keras": set(),
    "k3_fit/model.weights.h5": set(),
    "k3_fit/legacy.h5": set(),
    "k3_fit/export": set(),
    "k3_custom_loop_no_training/model.keras": {("BN002", f"bn{i}") for i in (1, 2, 3)},
    "k3_custom_loop_no_training/model.weights.h5": {("BN002", f"bn{i}") for i in (1, 2, 3)},
    "k3_center_scale/model.keras": set(),
    "k3_center_scale/model.weights.h5": set(),
    "k3_renorm/model.keras": set(),
    "k3_nested/model.keras": set(),
    "k3_nested/model.weights.h5": set(),
    "k3_subclassed/model.keras": set(),
    "k3_subclassed/model.weights.h5": set(),
    "k3_frozen/model.keras": {("BN003", "frozen_bn")},
    "tfk_fit/weights.h5": set(),
    "tfk_fit/model.h5": set(),
    "tfk_fit/savedmodel": set(),
    "tfk_fit/tfsaved": set(),
    "tfk_custom_loop_no_training/model.h5": {("BN002", "batch_normalization_1"), ("BN002", "batch_normalization_2")},
    "tfk_many_layers/model.h5": set(),
    "tf1_builder/savedmodel": set(),
}

LAYERS: dict[str, list[str]] = {
    "k3_fit/model.keras": ["bn1", "bn2", "bn3"],
    "k3_center_scale/model.keras": ["bn_nocenter", "bn_noscale", "bn_plain"],
    "k3_renorm/model.keras": ["bn_plain", "bn_renorm"],
    "k3_nested/model.keras": ["bb_bn1", "bb_bn2", "head_bn", "top_bn"],
    "k3_subclassed/model.keras": ["block_bn0", "block_bn1", "sub_bn_a", "sub_bn_b"],
    "tfk_fit/model.h5": ["batch_normalization", "bn_renorm", "frozen_dense_bn"],
    "tf1_builder/savedmodel": ["batch_normalization", "batch_normalization_1"],
}


def inspect(relative: str) -> bncheck.Report:
    report = bncheck.inspect(str(KERAS / relative))
    assert not report.errors, report.errors
    return report


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_findings_match_the_story(relative: str) -> None:
    report = inspect(relative)
    assert report.layers
    found = {(f.code, f.layer) for f in report.findings if f.code < "BN100"}
    assert found == EXPECTED[relative]


@pytest.mark.parametrize("relative", sorted(LAYERS))
def test_layer_names(relative: str) -> None:
    assert [layer.name for layer in inspect(relative).layers] == LAYERS[relative]


def _keras_bn_values(model) -> dict[str, dict[str, np.ndarray]]:
    """Every BN layer of a (nested) Keras model: role -> value, as Keras restored it."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found.update(_keras_bn_values(layer))
        elif "BatchNormalization" in type(layer).__name__:
            found[layer.name] = {
                role: np.asarray(getattr(layer, role)) for role in ROLES if getattr(layer, role, None) is not None
            }
            for extra in ("renorm_mean", "renorm_stddev", "moving_stddev"):
                if getattr(layer, extra, None) is not None:
                    found[layer.name][extra] = np.asarray(getattr(layer, extra))
    return found


def _assert_same(report: bncheck.Report, expected: dict[str, dict[str, np.ndarray]]) -> None:
    assert {layer.name for layer in report.layers} == set(expected)
    for layer in report.layers:
        assert set(layer.values) == set(expected[layer.name]), layer.name
        for role, value in expected[layer.name].items():
            got = layer.values[role]
            assert got.dtype == value.dtype and got.shape == value.shape, (layer.name, role)
            assert got.tobytes() == value.tobytes(), (layer.name, role)


@pytest.mark.parametrize(
    "relative",
    [
        "k3_fit/model.keras",
        "k3_fit/legacy.h5",
        "k3_custom_loop_no_training/model.keras",
        "k3_center_scale/model.keras",
        "k3_renorm/model.keras",
        "k3_nested/model.keras",
        "k3_frozen/model.keras",
    ],
)
def test_keras3_values_equal_what_keras_loads(relative: str) -> None:
    keras = pytest.importorskip("keras")
    model = keras.saving.load_model(KERAS / relative, compile=False)
    _assert_same(inspect(relative), _keras_bn_values(model))


@pytest.mark.parametrize("scenario", ["k3_fit", "k3_custom_loop_no_training", "k3_nested"])
def test_keras3_weights_file_equals_load_weights(scenario: str) -> None:
    keras = pytest.importorskip("keras")
    model = keras.saving.load_model(KERAS / scenario / "model.keras", compile=False)
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, weight.dtype))
    model.load_weights(KERAS / scenario / "model.weights.h5")
    _assert_same(inspect(f"{scenario}/model.weights.h5"), _keras_bn_values(model))


@pytest.mark.parametrize(
    "relative", ["tfk_fit/model.h5", "tfk_custom_loop_no_training/model.h5", "tfk_many_layers/model.h5"]
)
def test_keras2_h5_values_equal_what_tf_keras_loads(relative: str) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.models.load_model(KERAS / relative, compile=False)
    _assert_same(inspect(relative), _keras_bn_values(model))


def test_keras2_weights_only_h5_equals_load_weights() -> None:
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.models.load_model(KERAS / "tfk_fit/model.h5", compile=False)
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, weight.dtype.as_numpy_dtype))
    model.load_weights(KERAS / "tfk_fit/weights.h5")
    _assert_same(inspect("tfk_fit/weights.h5"), _keras_bn_values(model))


@pytest.mark.parametrize(
    "relative", ["k3_fit/export", "tfk_fit/savedmodel", "tfk_fit/tfsaved", "tf1_builder/savedmodel"]
)
def test_savedmodel_values_equal_the_tensorflow_reader(relative: str) -> None:
    tf = pytest.importorskip("tensorflow")
    reader = tf.train.load_checkpoint(str(KERAS / relative / "variables" / "variables"))
    for layer in inspect(relative).layers:
        for role, variable in layer.variables.items():
            assert layer.values[role].tobytes() == reader.get_tensor(variable.key).tobytes(), (layer.name, role)


def test_config_gives_roles_momentum_epsilon_and_renorm_extras() -> None:
    report = inspect("k3_center_scale/model.keras")
    assert [sorted(layer.variables) for layer in report.layers] == [
        ["gamma", "moving_mean", "moving_variance"],
        ["beta", "moving_mean", "moving_variance"],
        ["moving_mean", "moving_variance"],
    ]
    assert all(layer.hints.momentum == 0.5 and layer.hints.epsilon == 0.001 for layer in report.layers)
    assert not report.notes
    renorm = {layer.name: layer for layer in inspect("k3_renorm/model.keras").layers}["bn_renorm"]
    assert {"renorm_mean", "renorm_stddev", "moving_stddev"} <= set(renorm.variables)
    tfk = {layer.name: layer for layer in inspect("tfk_fit/model.h5").layers}["bn_renorm"]
    assert {"renorm_mean", "renorm_stddev", "moving_stddev"} <= set(tfk.variables)


def test_weights_without_config_say_the_mapping_is_ambiguous() -> None:
    report = inspect("k3_center_scale/model.weights.h5")
    assert [sorted(layer.variables) for layer in report.layers] == [["moving_mean", "moving_variance"]] * 3
    assert any("hold 3 variables" in n and "bn_nocenter, bn_noscale" in n and "ambiguous" in n for n in report.notes)
    assert any("hold 2 variables" in n and "bn_plain" in n for n in report.notes)
    result = run_cli("inspect", str(KERAS / "k3_center_scale/model.weights.h5"))
    assert result.returncode == 0 and "ambiguous" in result.stdout


@pytest.mark.parametrize(
    ("added", "first", "step"),
    [
        (("global_step:0", np.int64(7)), False, Step(20, "optimizer iterations")),  # the first counter listed counts
        (("Adam/iter:0", np.float32(3)), True, None),  # ... even when it is no integer: no step then
    ],
)
def test_a_keras2_step_is_the_first_counter_the_optimizer_lists(
    tmp_path: Path, added: tuple[str, np.generic], first: bool, step: Step | None
) -> None:
    """A copy of a tf.keras .h5 with one more optimizer weight named as a step counter."""
    import h5py

    path = tmp_path / "model.h5"
    shutil.copy(FIXTURES / "keras" / "tfk_fit" / "model.h5", path)
    with h5py.File(path, "r+") as h5:
        group = h5["optimizer_weights"]
        name, value = added
        group[name] = value
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        group.attrs["weight_names"] = [n.encode() for n in ([name, *names] if first else [*names, name])]
    assert bncheck.inspect(str(path)).step == step


def test_step_from_the_optimizer() -> None:
    assert inspect("k3_fit/model.keras").step == Step(20, "optimizer iterations")
    assert inspect("k3_fit/legacy.h5").step == Step(20, "optimizer iterations")
    assert inspect("tfk_fit/model.h5").step == Step(20, "optimizer iterations")
    assert inspect("tfk_fit/weights.h5").step is None


def test_frozen_layers_are_shown_and_judged_as_info() -> None:
    report = inspect("k3_frozen/model.keras")
    frozen = {layer.name: not layer.hints.trainable for layer in report.layers}
    assert frozen == {"frozen_bn": True, "live_bn": False}
    (finding,) = report.findings
    assert finding.severity == Severity.INFO and "frozen layer (trainable=False)" in finding.message
    for relative in ("tfk_fit/model.h5", "tfk_fit/savedmodel"):
        layers = {layer.name: layer for layer in inspect(relative).layers}
        assert not layers["frozen_dense_bn"].hints.trainable and layers["batch_normalization"].hints.trainable
        # momentum 0.99 and 20 steps would otherwise make BN006 claim 82% of 0/1 remains
        assert layers["frozen_dense_bn"].hints.momentum == 0.99
    result = run_cli("inspect", "--format", "json", str(KERAS / "k3_frozen/model.keras"))
    assert result.returncode == 0
    (file,) = json.loads(result.stdout)["files"]
    assert [layer["frozen"] for layer in file["layers"]] == [True, False]
    table = run_cli("inspect", str(KERAS / "k3_frozen/model.keras")).stdout
    assert "frozen" in table and "BN003" in table


def test_frozen_layer_with_trained_gamma_and_default_stats_stays_an_error() -> None:
    from bncheck.config import Settings
    from bncheck.facts import LayerHints
    from bncheck.layers import BNLayer
    from bncheck.rules import RULES, Context
    from bncheck.stats import summarise

    values = {"gamma": np.full(4, 1.5, "float32"), "beta": np.zeros(4, "float32")}
    values |= {"moving_mean": np.zeros(4, "float32"), "moving_variance": np.ones(4, "float32")}
    stats = dict(zip(values, summarise(list(values.values())), strict=True))
    layer = BNLayer("bn", {}, LayerHints(trainable=False), values, stats)
    context = Context(None, Settings().thresholds)
    (finding,) = RULES["BN002"].run(layer, context)
    assert finding.severity == Severity.ERROR and "frozen" in finding.message


def test_nested_and_subclassed_models_name_every_layer_once() -> None:
    nested = inspect("k3_nested/model.weights.h5")
    assert [layer.name for layer in nested.layers] == LAYERS["k3_nested/model.keras"]
    many = inspect("tfk_many_layers/model.h5")
    assert len(many.layers) == 81 and "first_bn" in {layer.name for layer in many.layers}
    assert all(layer.hints.momentum == 0.5 for layer in many.layers)


def test_content_detection_not_extension(tmp_path: Path) -> None:
    shutil.copy(KERAS / "tfk_fit/model.h5", tmp_path / "model.bin")
    shutil.copy(KERAS / "k3_fit/model.keras", tmp_path / "model.zip")
    shutil.copy(KERAS / "k3_fit/model.weights.h5", tmp_path / "weights.hdf5")
    shutil.copy(KERAS / "k3_fit/model.keras", tmp_path / "keras3.h5")
    for name, layers in (("model.bin", 3), ("model.zip", 3), ("weights.hdf5", 3), ("keras3.h5", 3)):
        assert len(bncheck.inspect(str(tmp_path / name)).layers) == layers, name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some text\n", "bncheck reads TensorFlow checkpoints"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "not a readable HDF5 file"),
        (b"PK\x03\x04" + b"\0" * 100, "not a readable .keras (zip) archive"),
    ],
)
def test_unsupported_or_corrupt_file_exits_2_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(content)
    result = run_cli("inspect", str(path))
    assert result.returncode == 2
    assert message in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_hdf5_and_zip_that_are_not_keras(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as h5:
        h5["x"] = np.arange(3)
    shutil.make_archive(str(tmp_path / "archive"), "zip", KERAS / "k3_fit" / "export")
    for path, message in ((tmp_path / "data.h5", "in neither Keras layout"), (tmp_path / "archive.zip", "without")):
        with pytest.raises(BncheckError, match=message):
            bncheck.inspect(str(path))


def test_truncated_keras_archive_is_an_error(tmp_path: Path) -> None:
    data = (KERAS / "k3_fit/model.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    result = run_cli("inspect", str(tmp_path / "cut.keras"))
    assert result.returncode == 2 and "cut.keras" in result.stderr and "Traceback" not in result.stderr


def test_reading_a_tf_checkpoint_does_not_import_h5py() -> None:
    code = (
        "import sys, bncheck; bncheck.inspect(sys.argv[1]); "
        "assert 'h5py' not in sys.modules and 'tensorflow' not in sys.modules"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code, str(FIXTURES / "tf1_correct")], check=True)
    subprocess.run(
        [sys.executable, "-c", code.replace("'h5py' not in sys.modules and ", ""), str(KERAS / "k3_fit/model.keras")],
        check=True,
    )


# ---------------------------------------------------------------- real-world files (MANIFEST.md sets 2, 3, 4)


def _healthy(report: bncheck.Report) -> None:
    assert not report.errors
    assert not {"BN001", "BN002", "BN003"} & {f.code for f in report.findings}


def test_realworld_keras2_weights_only() -> None:
    report = bncheck.inspect(str(realworld("keras_h5_cifar10_denisko/cifar10_model.h5")))
    assert [layer.name for layer in report.layers] == [f"batch_normalization_{i}" for i in range(7, 14)]
    _healthy(report)


def test_realworld_keras_2_14_archive_with_layer_checkpoint_dependencies() -> None:
    report = bncheck.inspect(str(realworld("keras3_cifar10_mlops/cifar10.keras")))
    assert [layer.name for layer in report.layers] == [
        "batch_normalization",
        "batch_normalization_1",
        "batch_normalization_2",
    ]
    assert [layer.channels for layer in report.layers] == [32, 32, 32]
    assert report.layers[0].hints.momentum == 0.99
    _healthy(report)


@pytest.mark.parametrize(
    "name",
    [
        "fer2013_mini_XCEPTION.102-0.66.hdf5",
        "fer2013_mini_XCEPTION.00-0.47.hdf5",
        "gender_mini_XCEPTION.21-0.95.hdf5",
        "tiny_XCEPTION_KDEF.hdf5",
    ],
)
def test_realworld_keras_2_0_full_models(name: str) -> None:
    report = bncheck.inspect(str(realworld(f"keras_h5_face_mini_xception/{name}")))
    assert len(report.layers) == 14
    assert sum(layer.channels for layer in report.layers) == (370 if name.startswith("tiny") else 736)
    # fer2013: group batch_normalization_1 holds batch_normalization_1_1/gamma:0; still the layer's name
    assert {layer.name for layer in report.layers} == {f"batch_normalization_{i}" for i in range(1, 15)}
    assert all(set(layer.variables) == set(ROLES) for layer in report.layers)
    _healthy(report)
