"""Fuzzing: mutated bytes of real fixtures of every format give bncheck's own error or a valid report.

Never another exception, never a hang (per-case timeout), never a write to the input. The cases
run in a worker process (tests/fuzz_worker.py) so a crash in a C extension is caught too.
Regression cases found by the fuzzer are kept below as explicit ``@example``s.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import FIXTURES, ROOT

CASES = int(os.environ.get("BNCHECK_FUZZ_CASES", "2000"))
# CI runs the same cases every time (a red build must mean a regression, not a lucky draw);
# BNCHECK_FUZZ_EXPLORE=1 draws new ones, to hunt for crashes before adding them as @examples.
EXPLORE = bool(os.environ.get("BNCHECK_FUZZ_EXPLORE"))
TIMEOUT = 20.0  # seconds per case: generous for a loaded CI machine, far below a hang

# (model to copy, path inside the copy to inspect, files inside the copy to mutate)
TARGETS = [
    ("tf1_correct", ".", ["model.ckpt-20.index", "model.ckpt-20.data-00000-of-00001", "model.ckpt-20.meta"]),
    ("tf2_fit", ".", ["ckpt-1.index", "ckpt-1.data-00000-of-00001", "checkpoint"]),
    ("tf1_partitioned", ".", ["model.ckpt-20.index"]),
    ("keras/k3_fit/model.keras", "model.keras", ["model.keras"]),
    ("keras/k3_fit/model.weights.h5", "model.weights.h5", ["model.weights.h5"]),
    ("keras/tfk_fit/model.h5", "model.h5", ["model.h5"]),
    ("keras/tfk_fit/savedmodel", ".", ["saved_model.pb", "keras_metadata.pb", "variables/variables.index"]),
    ("keras/tf1_builder/savedmodel", ".", ["saved_model.pb"]),
    ("graphs/frozen_healthy/frozen.pb", "frozen.pb", ["frozen.pb"]),
    ("graphs/r2rt", "model.ckpt-40", ["model.ckpt-40.meta", "model.ckpt-40.index", "model.ckpt-40.meta"]),
    ("graphs/r2rt/frozen.pb", "frozen.pb", ["frozen.pb"]),
    ("graphs/onnx/training_mode.onnx", "training_mode.onnx", ["training_mode.onnx"]),
    # appended, so that the targets of the kept @examples keep their indices
    ("exports/tf2_serving_training", ".", ["saved_model.pb"]),  # TF2 function library, signatures, object graph
    ("exports/frozen_default_true/frozen.pb", "frozen.pb", ["frozen.pb"]),  # TF1 cond around the BN ops
    ("torch/healthy.pt", "healthy.pt", ["healthy.pt"]),  # torch.save zip: data.pkl, storages, central directory
    ("torch/healthy_legacy.pt", "healthy_legacy.pt", ["healthy_legacy.pt"]),  # five pickles, then storages
    ("torch/healthy.safetensors", "healthy.safetensors", ["healthy.safetensors"]),  # header length, JSON, offsets
    (
        "torch/sharded",
        "model.safetensors.index.json",
        ["model.safetensors.index.json", "model-00001-of-00002.safetensors"],
    ),
]
MUTATIONS = ("flip", "overwrite", "truncate", "insert", "zero")


class Worker:
    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz_worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def run(self, path: str) -> str:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(path + "\n")
        self.process.stdin.flush()
        if not self.selector.select(TIMEOUT):
            self.process.kill()
            self.start()
            return f"hang (> {TIMEOUT} s)"
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.start()
            return f"worker died with status {code}"
        return line.strip()

    def close(self) -> None:
        self.process.kill()


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def _digest(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def mutate(data: bytes, kind: str, where: float, payload: bytes) -> bytes:
    if not data:
        return payload
    at = min(int(where * len(data)), len(data) - 1)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (payload[0] if payload and payload[0] else 1)]) + data[at + 1 :]
    if kind == "overwrite":
        return data[:at] + payload + data[at + len(payload) :]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + payload + data[at:]
    return data[:at] + bytes(len(payload)) + data[at + len(payload) :]


def run_case(worker: Worker, target: int, file: int, kind: str, where: float, payload: bytes) -> None:
    source, inspect, files = TARGETS[target]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        origin = FIXTURES / source
        if origin.is_dir():
            shutil.copytree(origin, model)
        else:
            model.mkdir()
            shutil.copy(origin, model / origin.name)
        victim = model / files[file % len(files)]
        victim.write_bytes(mutate(victim.read_bytes(), kind, where, payload))
        before = _digest(model)
        verdict = worker.run(str(model / inspect))
        assert verdict in ("ok", "error"), f"{source}: {kind} at {where:.4f} of {victim.name} ({payload!r}): {verdict}"
        assert _digest(model) == before, "the input was modified"


@settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    derandomize=not EXPLORE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    target=st.integers(0, len(TARGETS) - 1),
    file=st.integers(0, 2),
    kind=st.sampled_from(MUTATIONS),
    where=st.floats(0, 1),
    payload=st.binary(min_size=1, max_size=16),
)
@example(target=0, file=0, kind="truncate", where=0.5, payload=b"\0")  # baseline damage kinds, always run
@example(target=3, file=0, kind="overwrite", where=0.0, payload=b"PK\x03\x04")
@example(target=4, file=0, kind="zero", where=0.0, payload=b"\0" * 16)
# Found by the fuzzer, fixed, kept: an ONNX node name that is not UTF-8 comes back as bytes
@example(target=11, file=0, kind="flip", where=0.2031, payload=b"\x80")
# Found by the fuzzer (h5py's RuntimeError escaping the Keras readers), fixed, kept:
@example(target=4, file=0, kind="insert", where=0.5, payload=b"\0")
@example(target=4, file=0, kind="insert", where=0.0156, payload=b"\0")
# Found by the fuzzer (zipfile's UnicodeDecodeError on a damaged member name of a torch zip), fixed, kept:
@example(target=14, file=0, kind="flip", where=0.953125, payload=b"\x80")
def test_mutated_fixtures_give_an_error_or_a_report(worker: Worker, target, file, kind, where, payload) -> None:
    run_case(worker, target, file, kind, where, payload)
