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
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import FIXTURES, ROOT
from .structured import DAMAGES

CASES = int(os.environ.get("BNCHECK_FUZZ_CASES", "1000"))
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
# What a case may end with: a report, bncheck's error, or the supervisor's exit 2 (past the deadline or the
# memory cap, or the reader crashed): never another exception, a hang of bncheck itself or a changed input.
VERDICTS = ("ok", "error", "deadline", "memory", "crashed")


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


def fuzzing(cases: int) -> Any:
    """Hypothesis settings of a fuzzer: ``cases`` cases, the same every run unless exploring."""
    return settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=not EXPLORE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


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


def copy_of(source: str, into: Path) -> Path:
    """A copy of the fixture ``source`` (a directory, or a file put in one) as ``into/model``."""
    model, origin = into / "model", FIXTURES / source
    if origin.is_dir():
        shutil.copytree(origin, model)
    else:
        model.mkdir()
        shutil.copy(origin, model / origin.name)
    return model


def run_case(worker: Worker, target: int, file: int, kind: str, where: float, payload: bytes) -> str:
    source, inspect, files = TARGETS[target]
    with tempfile.TemporaryDirectory() as tmp:
        model = copy_of(source, Path(tmp))
        victim = model / files[file % len(files)]
        victim.write_bytes(mutate(victim.read_bytes(), kind, where, payload))
        before = _digest(model)
        verdict = worker.run(str(model / inspect))
        assert verdict in VERDICTS, f"{source}: {kind} at {where:.4f} of {victim.name} ({payload!r}): {verdict}"
        assert _digest(model) == before, "the input was modified"
    return verdict


@fuzzing(CASES)
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
# The HDF5 loop of the performance issue (8 bytes inserted at offset 39975): ends at the supervisor's deadline
@example(target=5, file=0, kind="insert", where=39975.5 / 70336, payload=bytes(8))
# Found by the campaign of issue 18: 8 bytes overwritten at offset 891 make HDF5 allocate 1.5 GB for 3-5 s,
# past the fuzzer's 3 s deadline (an error, exit 2, when it may finish)
@example(target=5, file=0, kind="overwrite", where=0.01267341388293619, payload=bytes.fromhex("5d4899afb407fc74"))
# Found by the campaign of issue 18: 10 bytes overwritten at offset 39863 send HDF5 into an endless loop (as the
# reproducer above): cut off at the deadline
@example(target=5, file=0, kind="overwrite", where=0.5667643632110778, payload=bytes.fromhex("3e00e55d7d5d5eb73894"))
# Found by the campaign of issue 18: 15 bytes zeroed at offset 39356, another endless HDF5 loop; 5 bytes at
# offset 10672 make HDF5 allocate 2.5 GB before its error: both exit 2 (deadline, or the error within it)
@example(target=5, file=0, kind="zero", where=0.559547298040998, payload=bytes(15))
@example(target=5, file=0, kind="overwrite", where=0.15173631691175749, payload=bytes.fromhex("3bc2019a00"))
# Found by the campaign of issue 18: a flipped num_batches_tracked of -1.9e18 made BN006's momentum**count overflow
# (OverflowError); a negative count is now damage, named
@example(target=15, file=0, kind="flip", where=0.9183315234677866, payload=bytes.fromhex("e6f3603d684724c9818d68"))
def test_mutated_fixtures_give_an_error_or_a_report(worker: Worker, target, file, kind, where, payload) -> None:
    run_case(worker, target, file, kind, where, payload)


# Structure-aware damage (tests/structured.py): (model to copy, path to inspect, file to damage, its damage)
STRUCTURED = [
    ("keras/tfk_fit/model.h5", "model.h5", "model.h5", "hdf5"),
    ("keras/k3_fit/model.weights.h5", "model.weights.h5", "model.weights.h5", "hdf5"),
    ("keras/k3_fit/model.keras", "model.keras", "model.keras", "keras-hdf5"),
    ("keras/k3_fit/model.keras", "model.keras", "model.keras", "zip"),
    ("torch/healthy.pt", "healthy.pt", "healthy.pt", "zip"),
    ("torch/healthy.pt", "healthy.pt", "healthy.pt", "torch-pickle"),
    ("torch/healthy_legacy.pt", "healthy_legacy.pt", "healthy_legacy.pt", "pickle"),
    ("torch/healthy.safetensors", "healthy.safetensors", "healthy.safetensors", "safetensors"),
    ("graphs/frozen_healthy/frozen.pb", "frozen.pb", "frozen.pb", "protobuf"),
    ("graphs/r2rt", "model.ckpt-40", "model.ckpt-40.meta", "protobuf"),
    ("graphs/onnx/training_mode.onnx", "training_mode.onnx", "training_mode.onnx", "protobuf"),
    ("exports/tf2_serving_training", ".", "saved_model.pb", "protobuf"),
    ("tf2_fit", ".", "ckpt-1.index", "protobuf"),  # a tensor bundle's index: an SSTable of BundleEntryProtos
]
STRUCTURED_CASES = int(os.environ.get("BNCHECK_FUZZ_STRUCTURED_CASES", "400"))


def damaged_copy(target: int, op: int, structure: int, field: int, value: int, count: int, into: Path) -> Path:
    """A copy of a structured target's model in ``into`` with its file damaged; the path to inspect."""
    source, inspect, file, kind = STRUCTURED[target]
    damage, ops = DAMAGES[kind]
    model = copy_of(source, into)
    victim = model / file
    victim.write_bytes(damage(victim.read_bytes(), ops[op % len(ops)], structure, field, value, count))
    return model / inspect


def run_structured(worker: Worker, target: int, op: int, structure: int, field: int, value: int, count: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = damaged_copy(target, op, structure, field, value, count, Path(tmp))
        before = _digest(Path(tmp))
        verdict = worker.run(str(path))
        assert _digest(Path(tmp)) == before, "the input was modified"
    return verdict


@fuzzing(STRUCTURED_CASES)
# Found by the campaign of issue 18: a field of a Keras 3 .weights.h5 overwritten: HDF5 allocates 7 GB in 15 s
@example(target=1, op=0, structure=47821, field=27, value=240, count=13)
# Found by the campaign of issue 18: an ONNX BN node repeated into 4,192 of one name took 8 s to name (quadratic)
@example(target=10, op=2, structure=20929, field=43, value=124, count=32540)
@given(
    target=st.integers(0, len(STRUCTURED) - 1),
    op=st.integers(0, 3),
    structure=st.integers(0, 2**16),
    field=st.integers(0, 63),
    value=st.integers(0, 255),
    count=st.integers(0, 2**16),
)
def test_structure_aware_damage_gives_an_error_or_a_report(
    worker: Worker, target: int, op: int, structure: int, field: int, value: int, count: int
) -> None:
    verdict = run_structured(worker, target, op, structure, field, value, count)
    assert verdict in VERDICTS, f"{STRUCTURED[target]} op {op} at {structure}/{field} = {value} x{count}: {verdict}"
