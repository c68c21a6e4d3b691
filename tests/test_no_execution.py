"""Model files come from strangers: reading one never runs code, never unpickles, never writes."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

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
