"""Exported graphs (issue 9): frozen GraphDef .pb, BN found by structure, ONNX models.

Oracles: TensorFlow's own GraphDef parse and ``tf.make_ndarray`` for frozen graphs,
``onnx.numpy_helper`` for ONNX initializers. Fixtures: fixtures/make_graph_fixtures.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bncheck
from bncheck.readers import open_model
from bncheck.readers.proto import tf_subset_pb2 as pb

from .conftest import FIXTURES, ROOT, realworld, run_cli

GRAPHS = FIXTURES / "graphs"
FROZEN = ["frozen_healthy", "frozen_never_updated", "frozen_swapped_names", "r2rt"]
# Each fixture's predicted findings: layer -> codes (the generator's docstring tells the stories).
PREDICTED = {
    "frozen_healthy/frozen.pb": {"batch_normalization": [], "batch_normalization_1": []},
    "frozen_never_updated/frozen.pb": {"batch_normalization": ["BN002"], "batch_normalization_1": ["BN002"]},
    "frozen_swapped_names/frozen.pb": {"bn": ["BN002"]},
    "r2rt/model.ckpt-40": {"batchnorm": [], "batchnorm_1": []},
    "r2rt/frozen.pb": {"batchnorm": [], "batchnorm_1": []},
    "r2rt_no_updates/model.ckpt-40": {
        "batchnorm": ["BN002", "BN102", "BN103"],
        "batchnorm_1": ["BN002", "BN102", "BN103"],
    },
    "onnx/healthy.onnx": {"2": []},
    "onnx/untouched_stats.onnx": {"2": ["BN002"]},
    "onnx/training_mode.onnx": {"2": ["BN013"]},
}
BLOCK_ONNX = """
import sys
class BlockOnnx:
    def find_spec(self, name, path=None, target=None):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx' (blocked by the test)")
        return None
sys.meta_path.insert(0, BlockOnnx())
sys.argv[0] = "bncheck"
from bncheck.cli import main
main()
"""


def tf_constants(path: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    return {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph_def.node if n.op == "Const"}


def assert_same_constants(path: Path) -> int:
    """bncheck's constants equal TensorFlow's, value for value and bit for bit; returns how many."""
    expected = {k: v for k, v in tf_constants(path).items() if v.dtype.kind == "f"}
    checkpoint = open_model(str(path))
    got = {v.name: v for v in checkpoint.variables}
    assert set(got) == set(expected)
    for name, variable in got.items():
        value = variable.load()
        assert value.dtype == expected[name].dtype and value.shape == expected[name].shape == variable.shape, name
        assert value.tobytes() == expected[name].tobytes(), name
    return len(got)


@pytest.mark.parametrize("name", FROZEN)
def test_frozen_constants_match_tensorflow(name: str) -> None:
    assert assert_same_constants(GRAPHS / name / "frozen.pb") >= 5


def test_realworld_frozen_mobilenet_constants_match_tensorflow() -> None:
    assert assert_same_constants(realworld("frozen_pb_mobilenet025_retrained/retrained_graph.pb")) >= 108


def test_typed_values_decode_as_make_ndarray_does() -> None:
    """One value broadcast, a short list padded with its last value, float16 bit patterns in half_val."""
    import tensorflow as tf

    from bncheck.readers.frozen import tensor_value

    broadcast = tf.make_tensor_proto(0.5, shape=[4])
    padded = tf.make_tensor_proto(np.zeros(3, np.float32))
    padded.ClearField("tensor_content")
    padded.float_val.extend([1.0, 2.0])
    half = tf.make_tensor_proto(np.zeros(3, np.float16))
    half.ClearField("tensor_content")
    half.half_val.extend(np.array([1.5, -2.0, 3.0], np.float16).view(np.uint16).tolist())
    doubles = tf.make_tensor_proto(np.array([1.0, 2.0], np.float64))
    for proto in (broadcast, padded, half, doubles):
        ours = tensor_value(pb.TensorProto.FromString(proto.SerializeToString()), "t")
        expected = tf.make_ndarray(proto)
        assert ours.dtype == expected.dtype and ours.tobytes() == expected.tobytes()
    assert tensor_value(pb.TensorProto.FromString(padded.SerializeToString()), "t").tolist() == [1.0, 2.0, 2.0]


@pytest.mark.parametrize("relative", sorted(PREDICTED))
def test_predicted_findings(relative: str) -> None:
    report = bncheck.inspect(str(GRAPHS / relative))
    assert not report.errors
    assert {layer.name: report.codes(layer.name) for layer in report.layers} == PREDICTED[relative]


def test_structure_groups_unnamed_variables_with_epsilon_and_momentum_from_the_graph() -> None:
    for path in (GRAPHS / "r2rt" / "model.ckpt-40", GRAPHS / "r2rt" / "frozen.pb"):
        report = bncheck.inspect(str(path))
        members = [{role: v.name for role, v in layer.variables.items()} for layer in report.layers]
        assert members == [
            {"gamma": "Variable_1", "beta": "Variable_2", "moving_mean": "Variable_3", "moving_variance": "Variable_4"},
            {"gamma": "Variable_6", "beta": "Variable_7", "moving_mean": "Variable_8", "moving_variance": "Variable_9"},
        ]
        assert {layer.hints.epsilon for layer in report.layers} == {0.001}
        assert not report.notes
    meta = bncheck.inspect(str(GRAPHS / "r2rt" / "model.ckpt-40"))
    assert {layer.hints.momentum for layer in meta.layers} == {0.9}
    # without the graph, names say nothing: no layer
    assert bncheck.inspect(str(GRAPHS / "r2rt" / "model.ckpt-40"), graph=False).layers == []


def test_frozen_epsilon_feeds_bn007() -> None:
    report = bncheck.inspect(str(GRAPHS / "frozen_healthy" / "frozen.pb"))
    assert [layer.hints.epsilon for layer in report.layers] == [0.001, 0.001]
    assert [layer.variables["moving_variance"].name for layer in report.layers] == [
        "batch_normalization/moving_variance",
        "batch_normalization_1/moving_variance",
    ]


def test_structure_and_names_disagreeing_is_a_note() -> None:
    report = bncheck.inspect(str(GRAPHS / "frozen_swapped_names" / "frozen.pb"))
    (layer,) = report.layers
    assert layer.variables["moving_mean"].name == "bn/moving_variance"  # the graph's role wins
    disagreements = [n for n in report.notes if n.startswith("names and graph structure disagree")]
    assert len(disagreements) == 2 and "bn/moving_mean: moving_mean by its name, moving_variance" in disagreements[0]
    result = run_cli("inspect", "--format", "json", str(GRAPHS / "frozen_swapped_names" / "frozen.pb"))
    assert result.returncode == 1
    assert len([n for n in json.loads(result.stdout)["files"][0]["notes"] if "disagree" in n]) == 2


def test_structure_agrees_with_names_on_a_tf1_training_graph() -> None:
    report = bncheck.inspect(str(FIXTURES / "tf1_correct"))
    assert [layer.name for layer in report.layers] == [
        "batch_normalization",
        "batch_normalization_1",
        "batch_normalization_2",
    ]
    assert not any("disagree" in note for note in report.notes)


def test_realworld_frozen_mobilenet() -> None:
    report = bncheck.inspect(str(realworld("frozen_pb_mobilenet025_retrained/retrained_graph.pb")))
    assert report.format == "frozen GraphDef" and len(report.layers) == 27
    assert all(set(layer.variables) == {"gamma", "beta", "moving_mean", "moving_variance"} for layer in report.layers)
    assert report.layers[0].name == "MobilenetV1/Conv2d_0/BatchNorm"
    assert not [f for f in report.findings if f.severity.label == "error"] and not report.errors
    assert not report.notes
    values = tf_constants(realworld("frozen_pb_mobilenet025_retrained/retrained_graph.pb"))
    for layer in report.layers:
        for role, variable in layer.variables.items():
            assert np.array_equal(layer.values[role], values[variable.name])


def test_realworld_r2rt_two_layers_by_structure() -> None:
    report = bncheck.inspect(str(realworld("bn_r2rt_mnist")))
    assert [layer.name for layer in report.layers] == ["batchnorm", "batchnorm_1"]
    assert [layer.variables["moving_variance"].name for layer in report.layers] == ["Variable_4", "Variable_9"]
    assert not [f for f in report.findings if f.severity.label == "error"] and not report.errors


def test_onnx_values_match_numpy_helper() -> None:
    import onnx
    from onnx import numpy_helper

    for path in sorted((GRAPHS / "onnx").glob("*.onnx")):
        model = onnx.load(str(path))
        initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        (node,) = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
        report = bncheck.inspect(str(path))
        (layer,) = report.layers
        for role, ref in zip(("gamma", "beta", "moving_mean", "moving_variance"), node.input[1:5], strict=True):
            assert layer.values[role].tobytes() == initializers[ref].tobytes(), (path.name, role)
        assert layer.hints.epsilon == pytest.approx(1e-5) and layer.hints.momentum == pytest.approx(0.9)


def run_without_onnx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_ONNX, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_onnx_without_the_package_is_exit_2_naming_the_extra() -> None:
    result = run_without_onnx("inspect", str(GRAPHS / "onnx" / "healthy.onnx"))
    assert result.returncode == 2, result.stderr
    assert "pip install 'bncheck[onnx]'" in result.stderr and "healthy.onnx" in result.stderr
    assert "Traceback" not in result.stderr
    # --help and TensorFlow inputs never import onnx
    assert run_without_onnx("--help").returncode == 0
    assert run_without_onnx("inspect", str(FIXTURES / "tf1_correct")).returncode == 0
    assert run_without_onnx("inspect", str(GRAPHS / "frozen_healthy" / "frozen.pb")).returncode == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x0a\x05hello", "not a TensorFlow GraphDef"), (b"", "a GraphDef without nodes"), (b"\xff" * 40, "GraphDef")],
)
def test_bad_pb_is_exit_2_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "broken.pb"
    bad.write_bytes(content)
    result = run_cli("inspect", str(bad))
    assert result.returncode == 2 and message in result.stderr and "broken.pb" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_onnx_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes((GRAPHS / "onnx" / "healthy.onnx").read_bytes()[:300])
    result = run_cli("inspect", str(bad))
    assert result.returncode == 2 and "broken.onnx" in result.stderr and "Traceback" not in result.stderr


def test_directory_scan_finds_frozen_graphs_and_onnx_but_not_saved_model_pb(tmp_path: Path) -> None:
    result = run_cli("inspect", "--format", "json", str(GRAPHS))
    files = {Path(f["path"]).relative_to(GRAPHS).as_posix(): f for f in json.loads(result.stdout)["files"]}
    assert set(files) == {
        "frozen_healthy/frozen.pb",
        "frozen_never_updated/frozen.pb",
        "frozen_swapped_names/frozen.pb",
        "r2rt",
        "r2rt/frozen.pb",
        "r2rt_no_updates",
        "onnx/healthy.onnx",
        "onnx/training_mode.onnx",
        "onnx/untouched_stats.onnx",
    } | {f"tf1_shapes/{story.name}" for story in (GRAPHS / "tf1_shapes").iterdir()}
    assert result.returncode == 1
    assert files["onnx/training_mode.onnx"]["format"] == "ONNX model"
    (tmp_path / "labels.pb").write_bytes(b"not a graph at all")
    (tmp_path / "model.onnx").write_bytes((GRAPHS / "onnx" / "healthy.onnx").read_bytes())
    saved = tmp_path / "export"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes((GRAPHS / "r2rt" / "frozen.pb").read_bytes())
    from bncheck.readers.discover import find_models

    found = [Path(m.path).relative_to(tmp_path).as_posix() for m in find_models(str(tmp_path))]
    assert sorted(found) == ["export", "model.onnx"]


@pytest.mark.parametrize("fmt", ["table", "sarif", "github"])
def test_every_output_format_takes_exported_inputs(fmt: str) -> None:
    result = run_cli("inspect", "--format", fmt, str(GRAPHS / "onnx" / "training_mode.onnx"))
    assert result.returncode == 1 and "BN013" in result.stdout


def test_onnx_with_a_nan_epsilon_reports_without_it(tmp_path: Path) -> None:
    """A damaged copy of a real export whose epsilon is NaN: the default epsilon applies, json stays valid."""
    import onnx

    model = onnx.load(str(GRAPHS / "onnx" / "healthy.onnx"))
    (node,) = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    (epsilon,) = [a for a in node.attribute if a.name == "epsilon"]
    epsilon.f = float("nan")
    damaged = tmp_path / "nan_epsilon.onnx"
    onnx.save(model, str(damaged))
    result = run_cli("inspect", str(damaged), "--format", "json")
    assert result.returncode == 0, result.stderr
    (layer,) = json.loads(result.stdout)["files"][0]["layers"]
    assert layer["epsilon"] is None and layer["momentum"] == pytest.approx(0.9)


def test_onnx_bn_nodes_of_one_name_get_unique_layer_names(tmp_path: Path) -> None:
    """Found by the fuzzing campaign: a real export's BN node repeated 4,000 times (one name) took 8 s to name,
    each name tried against every suffix before it. Names stay unique, in order, without that cost."""
    import onnx

    model = onnx.load(str(GRAPHS / "onnx" / "healthy.onnx"))
    (node,) = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    model.graph.node.extend([node] * 2999)
    repeated = tmp_path / "repeated.onnx"
    onnx.save(model, str(repeated))
    result = run_cli("inspect", str(repeated), "--format", "json", "--timeout", "0")
    assert result.returncode == 0, result.stderr
    names = [layer["name"] for layer in json.loads(result.stdout)["files"][0]["layers"]]
    base = names[0]
    assert len(names) == len(set(names)) == 3000 and names[1:3] == [f"{base}_1", f"{base}_2"]


def test_frozen_graph_with_a_nan_epsilon_uses_the_default(tmp_path: Path) -> None:
    """A damaged copy of a real frozen graph whose epsilons (a FusedBatchNorm attribute, the constant of
    Rsqrt(variance + epsilon)) are NaN: BN007 still judges, with the default epsilon; json stays valid."""
    graph = pb.GraphDef.FromString((GRAPHS / "frozen_healthy" / "frozen.pb").read_bytes())
    nodes = [*graph.node, *(node for function in graph.library.function for node in function.node_def)]
    fused = [node for node in nodes if node.op.startswith("FusedBatchNorm")]  # (in cond branch functions)
    constants = [node for node in nodes if node.name.endswith("/batchnorm/add/y")]
    assert fused and constants
    for node in fused:
        node.attr["epsilon"].f = float("nan")
    for node in constants:
        node.attr["value"].tensor.float_val[:] = [float("nan")]
    damaged = tmp_path / "frozen.pb"
    damaged.write_bytes(graph.SerializeToString())
    args = ("--threshold", "amplification=1", "--select", "BN007", "--format", "json")
    original = json.loads(run_cli("inspect", str(GRAPHS / "frozen_healthy" / "frozen.pb"), *args).stdout)
    result = run_cli("inspect", str(damaged), *args)
    assert result.returncode in (0, 1), result.stderr
    layers = json.loads(result.stdout)["files"][0]["layers"]
    assert [layer["epsilon"] for layer in layers] == [None] * len(layers)  # (0.001 in the original)
    assert [layer["codes"] for layer in layers] == [layer["codes"] for layer in original["files"][0]["layers"]]
    assert any(layer["codes"] == ["BN007"] for layer in layers)
