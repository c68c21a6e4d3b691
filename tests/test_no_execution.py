"""Model files come from strangers: reading one never runs code, never unpickles, never writes."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import bncheck

from .conftest import FIXTURES, run_cli

LAMBDA = FIXTURES / "keras" / "k3_lambda" / "model.keras"


class _Trap:
    """Unpickling this writes a marker file: proof that something unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled",))


def test_lambda_layer_config_is_read_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    model = tmp_path / "model.keras"
    shutil.copy(LAMBDA, model)
    result = run_cli("inspect", "--format", "json", str(model), env={"BNCHECK_LAMBDA_MARKER": str(marker)})
    assert result.returncode == 0, result.stderr
    assert '"name": "bn"' in result.stdout
    assert not marker.exists(), "bncheck ran the Lambda layer's code"


def test_the_lambda_fixture_is_armed(tmp_path: Path) -> None:
    """Keras itself, asked to deserialise unsafely, does run the code: the trap works."""
    import keras

    marker = tmp_path / "ran"
    os.environ["BNCHECK_LAMBDA_MARKER"] = str(marker)
    try:
        keras.saving.load_model(LAMBDA, safe_mode=False)
    finally:
        del os.environ["BNCHECK_LAMBDA_MARKER"]
    assert marker.read_text() == "ran"


def test_pickled_object_in_an_h5_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    model = tmp_path / "model.h5"
    shutil.copy(FIXTURES / "keras" / "tfk_fit" / "model.h5", model)
    payload = pickle.dumps(_Trap(str(marker)))
    with h5py.File(model, "a") as h5:
        h5.attrs["training_config"] = np.void(payload)
        h5["model_weights"].create_dataset("pickled", data=np.void(payload))
    pickle.loads(payload)  # the trap works when something does unpickle it ...
    assert marker.exists()
    marker.unlink()
    report = run_cli("inspect", "--format", "json", str(model))
    assert report.returncode in (0, 1, 2) and "Traceback" not in report.stderr
    assert not marker.exists(), "bncheck unpickled data from the file"


def test_no_pickle_no_keras_no_tensorflow_in_the_reading_path() -> None:
    """Reading every fixture format imports neither pickle-based loaders nor Keras nor TensorFlow."""
    probe = (
        "import sys, bncheck\n"
        f"for p in {[str(LAMBDA), str(FIXTURES / 'keras/tfk_fit/model.h5'), str(FIXTURES / 'tf1_correct')]!r}:\n"
        "    bncheck.inspect(p)\n"
        "heavy = ('tensorflow', 'keras', 'tf_keras', 'dill', 'cloudpickle')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(bad)\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_nothing_is_written_next_to_the_inputs(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "keras" / "k3_fit", tmp_path / "k3_fit")
    before = sorted((p.name, p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    for fmt in ("table", "json", "sarif", "github"):
        run_cli("inspect", "--format", fmt, str(tmp_path / "k3_fit"))
    bncheck.inspect(str(tmp_path / "k3_fit" / "model.keras"))
    after = sorted((p.name, p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    assert after == before


CUSTOM_LAYERS = """
import os, pathlib
pathlib.Path(os.environ["BNCHECK_IMPORT_MARKER"]).write_text("imported")  # importing this module runs code
import keras


@keras.saving.register_keras_serializable(package="Custom")
class TracingBatchNorm(keras.layers.BatchNormalization):
    def call(self, inputs, training=None):
        pathlib.Path(os.environ["BNCHECK_IMPORT_MARKER"]).write_text("called")
        return super().call(inputs, training=training)
"""
SAVE_CUSTOM = """
import sys
import keras, custom_layers
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), custom_layers.TracingBatchNorm(name="custom_bn")])
model.save(sys.argv[1])
"""


def test_a_keras_file_naming_a_module_of_custom_objects_never_imports_it(tmp_path: Path) -> None:
    """A .keras file written by Keras with a registered custom layer: its config names the module
    (``"module": "custom_layers"``, ``"registered_name": "Custom>TracingBatchNorm"``) that defines it; importing
    that module runs code. bncheck reads the config as data: the module is never imported, the layer never built."""
    import json
    import subprocess
    import zipfile

    (tmp_path / "custom_layers.py").write_text(CUSTOM_LAYERS)
    marker, model = tmp_path / "imported", tmp_path / "custom.keras"
    env = {"BNCHECK_IMPORT_MARKER": str(marker), "PYTHONPATH": str(tmp_path), "KERAS_BACKEND": "tensorflow"}
    saved = subprocess.run(
        [sys.executable, "-c", SAVE_CUSTOM, str(model)], env={**os.environ, **env}, capture_output=True, timeout=300
    )
    assert saved.returncode == 0, saved.stderr.decode()[-2000:]
    assert marker.read_text() == "imported"  # the trap is armed: importing the module ran it
    config = json.loads(zipfile.ZipFile(model).read("config.json"))
    layer = config["config"]["layers"][-1]
    assert (layer["module"], layer["registered_name"]) == ("custom_layers", "Custom>TracingBatchNorm")
    marker.unlink()
    result = run_cli("inspect", "--format", "json", str(model), env=env, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert not marker.exists(), "bncheck imported the module a Keras config names"
    (report,) = json.loads(result.stdout)["files"]  # and read as a BN layer (a subclass: BN's config keys)
    assert [(f["code"], f["layer"]) for f in report["findings"]] == [("BN003", "custom_bn")]


def test_onnx_external_data_outside_the_models_directory_is_never_opened(tmp_path: Path) -> None:
    """An ONNX model (written by onnx) whose BN scale lives in external data at ``../outside/fifo``: a named
    pipe, so that opening it would block. bncheck names the external data and never opens it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    outside, directory = tmp_path / "outside", tmp_path / "models"
    outside.mkdir()
    directory.mkdir()
    os.mkfifo(outside / "fifo")
    values = {name: np.ones(4, np.float32) for name in ("scale", "bias", "mean", "var")}
    initializers = [numpy_helper.from_array(value, name) for name, value in values.items()]
    scale = initializers[0]
    scale.ClearField("float_data")
    scale.ClearField("raw_data")
    scale.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside/fifo"), ("offset", "0"), ("length", "16")):
        scale.external_data.add(key=key, value=value)
    node = helper.make_node("BatchNormalization", ["x", *values], ["y"], name="bn", epsilon=1e-5)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])],
        initializers,
    )
    model = directory / "external.onnx"
    onnx.save(helper.make_model(graph), model)
    result = run_cli("inspect", str(model), "--timeout", "30")
    assert result.returncode == 2, result.stderr
    assert "stored in an external data file" in result.stderr and "within" not in result.stderr
    with pytest.raises(OSError):  # no reader has the pipe open: a writer that will not wait is refused
        os.close(os.open(outside / "fifo", os.O_WRONLY | os.O_NONBLOCK))
