"""Exports that normalise with batch statistics at inference (issue 15): SavedModel signatures, frozen graphs.

Fixtures: fixtures/make_export_fixtures.py (written by TensorFlow, Keras 3 and tf_keras). Oracle:
TensorFlow runs each signature (tests/export_oracle.py): a signature depends on the batch exactly
when bncheck says it normalises with batch statistics (BN013).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bncheck
from bncheck.readers import open_with_graph
from bncheck.readers.proto import tf_subset_pb2 as pb

from .conftest import FIXTURES, run_cli
from .export_oracle import batch_dependent

EXPORTS = FIXTURES / "exports"
BOTH = {"bn1": ["BN013"], "bn2": ["BN013"]}
HEALTHY = {"bn1": [], "bn2": []}
# Each fixture's predicted findings (the generator's docstring tells the stories).
PREDICTED = {
    "k3_export": HEALTHY,
    "tf2_serving_training": BOTH,
    "tf2_serving_inference": HEALTHY,
    "tf2_transposed_training": BOTH,  # Conv2DBackpropInput is a transposed convolution, not a gradient
    "tf2_train_signature": HEALTHY,
    "tfk_savedmodel": HEALTHY,
    "tfk_training_true": BOTH,  # BatchNormalization()(h, training=True) in the functional model
    "tfk_training_input": HEALTHY,  # serving_default(x, training): a note; bn1 writes back what it read
    "tf1_builder_training": BOTH,
    "tf1_builder_train_and_serve": BOTH,  # its train meta graph is healthy (UPDATE_OPS wired): no BN1xx
    "tf1_builder_default_true": BOTH,  # cond_v2: bn2's unfused op reads the If's output (the batch moments)
    "frozen_training/frozen.pb": BOTH,  # bn2 keeps no moving statistics at all: BN013 says so, not BN001
    "frozen_default_true/frozen.pb": BOTH,
    "frozen_fed_switch/frozen.pb": HEALTHY,  # a note: the caller chooses
}
SIGNATURE = re.compile(r"signature '([^']+)'")


def _flagged(report: bncheck.Report) -> set[str]:
    """The signatures (or "graph") that bncheck says normalise with batch statistics."""
    found = set()
    for finding in report.findings:
        if finding.code == "BN013" and finding.layer:
            found |= set(SIGNATURE.findall(finding.message)) or {"graph"}
    return found


@pytest.mark.parametrize("relative", sorted(PREDICTED))
def test_predicted_findings(relative: str) -> None:
    report = bncheck.inspect(str(EXPORTS / relative))
    assert not report.errors
    assert {layer.name: report.codes(layer.name) for layer in report.layers} == PREDICTED[relative]


@pytest.mark.parametrize("relative", sorted(PREDICTED))
def test_bn013_where_tensorflow_depends_on_the_batch(relative: str) -> None:
    """TensorFlow runs every signature on a batch and on its first sample: BN013 names exactly the signatures
    whose first output row changes."""
    oracle = batch_dependent(EXPORTS / relative)
    assert oracle, "the oracle ran nothing"
    report = bncheck.inspect(str(EXPORTS / relative))
    assert _flagged(report) == {key for key, depends in oracle.items() if depends}
    if None in oracle.values() or relative == "tfk_training_input":  # the caller chooses the mode: a note says so
        assert any("training (no default) is fed True; serving must avoid that" in note for note in report.notes)


def test_messages_name_the_signature_its_writer_and_that_writer_s_fix() -> None:
    report = bncheck.inspect(str(EXPORTS / "tf2_serving_training"))
    bn013 = next(f for f in report.findings if f.code == "BN013" and f.layer == "bn1")
    assert "signature 'serving_default' (written by tf.saved_model.save): the moments of the batch" in bn013.message
    assert bn013.fix == "the tf.function saved as this signature must call the model with training=False"
    tf1 = bncheck.inspect(str(EXPORTS / "tf1_builder_training"))
    fused = next(f for f in tf1.findings if f.code == "BN013" and f.layer == "bn1")
    assert "(written by TF1): FusedBatchNormV3 with is_training=true" in fused.message
    assert "placeholder_with_default(False)" in fused.fix
    frozen = bncheck.inspect(str(EXPORTS / "frozen_training" / "frozen.pb"))
    unfused = next(f for f in frozen.findings if f.code == "BN013" and f.layer == "bn2")
    assert "the moments of the batch (unfused)" in unfused.message and "no moving statistics saved" in unfused.message


def test_the_oracle_ran_every_signature_it_could() -> None:
    """TensorFlow's answers the fixtures' stories predict (``train`` needs labels: not run)."""
    expected = {
        "k3_export": {"serve": False, "serving_default": False},
        "tf2_train_signature": {"serving_default": False},
        "tfk_training_true": {"serving_default": True},
        "tf1_builder_training": {"serving_default": True},
        "frozen_fed_switch/frozen.pb": {"graph": None},
    }
    assert {name: batch_dependent(EXPORTS / name) for name in expected} == expected


def test_a_tf1_saved_model_s_train_graph_and_serving_signatures_are_both_read() -> None:
    """The graph rules digest the meta graph tagged train; the serve one's signature gets BN013 on the same
    layers, found by the training graph's structure."""
    model = open_with_graph(str(EXPORTS / "tf1_builder_train_and_serve"))
    assert model.graph is not None and model.graph.train_ops
    assert {layer.name: bool(layer.batch_statistics) for layer in model.structure} == {"bn1": True, "bn2": True}
    assert all(layer.updates for layer in model.structure)  # the training graph's reading, with its updates


def test_a_training_signature_is_not_judged_and_a_note_says_so() -> None:
    report = bncheck.inspect(str(EXPORTS / "tf2_train_signature"))
    assert [n for n in report.notes if n.startswith("signature 'train' trains (")], report.notes
    assert not [f for f in report.findings if f.code == "BN013"]


def test_tf2_saved_model_layers_by_structure_are_the_checkpoint_s_variables() -> None:
    """The layers the serving functions normalise, mapped through the captured variables (bound_inputs) to the
    object graph's names: the variables TensorFlow's loader restores under those names, value for value."""
    import tensorflow as tf

    model = open_with_graph(str(EXPORTS / "k3_export"))
    assert model.structure and {layer.name for layer in model.structure} == {"bn1", "bn2"}
    loaded = {v.name.removesuffix(":0"): v.numpy() for v in tf.saved_model.load(str(EXPORTS / "k3_export")).variables}
    ours = {v.name: v for v in model.variables}
    for layer in model.structure:
        assert set(layer.members) == {"gamma", "beta", "moving_mean", "moving_variance"}
        assert layer.epsilon == pytest.approx(1e-3)  # Keras' default, read from the graph
        for name in layer.members.values():
            np.testing.assert_array_equal(ours[name].load(), loaded[name])
    report = bncheck.inspect(str(EXPORTS / "k3_export"))
    assert not [n for n in report.notes if "disagree" in n]


# --------------------------------------------------------------------------- damaged function libraries


def _damaged(tmp_path: Path, change) -> Path:
    """A copy of a real TF2 SavedModel whose saved_model.pb ``change`` edits (a deliberately damaged file)."""
    target = tmp_path / "model"
    shutil.copytree(EXPORTS / "tf2_serving_training", target)
    saved = pb.SavedModel.FromString((target / "saved_model.pb").read_bytes())
    change(saved.meta_graphs[0].graph_def.library)
    (target / "saved_model.pb").write_bytes(saved.SerializeToString())
    return target


def _calls(function):
    return [n for n in function.node_def if n.op in ("StatefulPartitionedCall", "PartitionedCall")]


def _self_call(library) -> None:
    for function in library.function:
        for node in _calls(function):
            node.attr["f"].func.name = function.signature.name


def _missing(library) -> None:
    for function in library.function:
        for node in _calls(function):
            node.attr["f"].func.name = "__inference_gone_1"


def _deep(library) -> None:
    """Every call goes through a chain of 200 wrapper functions."""
    for function in library.function:
        for node in _calls(function):
            target = node.attr["f"].func.name
            for depth in range(200):
                wrapper = library.function.add()
                wrapper.CopyFrom(next(f for f in library.function if f.signature.name == target))
                wrapper.signature.name = f"__wrapper_{target}_{depth}"
                wrapper.ClearField("node_def")
                call = wrapper.node_def.add(name="call", op="PartitionedCall")
                call.input.extend(arg.name for arg in wrapper.signature.input_arg)
                call.attr["f"].func.name = target
                target = wrapper.signature.name
            node.attr["f"].func.name = target
            return


def _wide(library) -> None:
    """The signature's function reached through 8 levels that each call the next 40 times: 40**8 visits,
    unless the walk sees that every call is the same function on the same variables."""
    wrapper = next(f for f in library.function if "signature_wrapper" in f.signature.name)
    (call,) = _calls(wrapper)
    inner = next(f for f in library.function if f.signature.name == call.attr["f"].func.name)
    for level in range(8):
        wide = library.function.add()
        wide.signature.CopyFrom(inner.signature)
        wide.signature.name = f"__wide_{level}"
        for i in range(40):
            node = wide.node_def.add(name=f"call_{i}", op="PartitionedCall")
            node.input.extend(arg.name for arg in wide.signature.input_arg)
            node.attr["f"].func.name = inner.signature.name
        inner = wide
    call.attr["f"].func.name = inner.signature.name


@pytest.mark.parametrize(
    ("change", "note"),
    [
        (_self_call, "calls itself; the call is not followed"),
        (_missing, "calls function __inference_gone_1, which the library lacks"),
        (_deep, "calls nest deeper than 64"),
        (_wide, "BN013"),  # 40**8 calls of one function on the same variables: walked once, judged
    ],
    ids=["self-call", "missing", "deep", "wide"],
)
def test_a_damaged_function_library_is_a_note_never_a_crash_or_a_hang(tmp_path: Path, change, note: str) -> None:
    model = _damaged(tmp_path, change)
    started = time.monotonic()
    result = run_cli("inspect", str(model), "--format", "json")
    assert time.monotonic() - started < 30
    assert result.returncode in (0, 1), result.stderr
    assert note in result.stdout, result.stdout[-2000:]
    assert "nodes to visit" not in result.stdout  # every case ends by what it is, not by the node budget
    assert "Traceback" not in result.stderr


def test_a_walk_past_its_node_budget_stops_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    from bncheck.readers import exported

    monkeypatch.setattr(exported, "MAX_NODES", 50)
    report = bncheck.inspect(str(EXPORTS / "tf2_serving_training"))
    assert "signature 'serving_default': more than 50 nodes to visit; the rest not judged" in report.notes


def test_an_unparsable_saved_model_pb_is_exit_2_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "model"
    shutil.copytree(EXPORTS / "tf2_serving_training", target)
    (target / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 64)
    result = run_cli("inspect", str(target))
    assert result.returncode == 2
    assert "saved_model.pb: not a TensorFlow SavedModel (unparsable saved_model.pb); use --no-graph" in result.stderr
    assert run_cli("inspect", str(target), "--no-graph").returncode == 0


# --------------------------------------------------------------------------- small graphs built in code


def _bn_graph(switch: str | None, **fused: bool) -> Any:
    """x -> FusedBatchNormV3 over four constants; with ``switch`` (an op), the op sits in the branches of an
    ``If`` on that switch (training: then, ``is_training=true``; else: false), as cond_v2 writes it."""
    graph = pb.GraphDef()

    def node(where: Any, name: str, op: str, *inputs: str) -> Any:
        made = where.add(name=name, op=op)
        made.input.extend(inputs)
        return made

    node(graph.node, "x", "Placeholder")
    for role in ("gamma", "beta", "moving_mean", "moving_variance"):
        node(graph.node, f"bn/{role}", "Const").attr["value"].tensor.dtype = pb.DT_FLOAT
    stats = [f"bn/{role}" for role in ("gamma", "beta", "moving_mean", "moving_variance")]
    if switch is None:
        op = node(graph.node, "bn/FusedBatchNormV3", "FusedBatchNormV3", "x", *stats)
        for key, value in fused.items():
            op.attr[key].b = value
        return graph
    if switch == "PlaceholderWithDefault":
        node(graph.node, "default", "Const").attr["value"].tensor.bool_val.append(True)
        node(graph.node, "training", switch, "default")
    else:
        node(graph.node, "training", switch)
    cond = node(graph.node, "bn/cond", "If", "training", "x", *stats)
    for attr, training in (("then_branch", True), ("else_branch", False)):
        function = graph.library.function.add()
        function.signature.name = f"bn_cond_{attr}"
        args = ["x", "gamma", "beta", "mean", "variance"]
        function.signature.input_arg.extend(pb.OpDef.ArgDef(name=a) for a in args)
        function.signature.output_arg.add(name="y")
        op = node(function.node_def, "FusedBatchNormV3", "FusedBatchNormV3", *args)
        op.attr["is_training"].b = training
        function.ret["y"] = "FusedBatchNormV3:y:0"
        cond.attr[attr].func.name = function.signature.name
    return graph


def _judged(graph: Any):
    from bncheck.readers.exported import Entry, judge
    from bncheck.readers.graph import GraphIndex

    return judge(Entry("the frozen graph", GraphIndex.of(graph)))


def test_is_training_absent_is_its_default_true() -> None:
    """A graph saved with default attrs stripped omits is_training: TensorFlow's registry default is true."""
    (stripped,) = _judged(_bn_graph(None)).layers
    assert [b.how for b in stripped.batch_statistics] == [
        "FusedBatchNormV3 with is_training=true (bn/FusedBatchNormV3)"
    ]
    (inference,) = _judged(_bn_graph(None, is_training=False)).layers
    assert inference.batch_statistics == ()


def test_an_if_switch_with_default_true_runs_its_training_branch() -> None:
    verdict = _judged(_bn_graph("PlaceholderWithDefault"))
    assert [[b.how for b in layer.batch_statistics] for layer in verdict.layers] == [
        ["FusedBatchNormV3 with is_training=true (FusedBatchNormV3)"]
    ]
    assert not verdict.switched


def test_an_if_switch_that_must_be_fed_is_a_note_not_a_verdict() -> None:
    verdict = _judged(_bn_graph("Placeholder"))
    assert [layer.batch_statistics for layer in verdict.layers] == [()]
    assert verdict.switched == {"bn": "training (no default) is fed True"}


def test_a_function_called_twice_is_walked_again_when_its_switch_differs() -> None:
    """block(x, False) and block(x, True) on the same variables: the second call is not the first again."""
    for order in ((False, True), (True, False)):
        graph = _bn_graph("Placeholder")
        cond = next(n for n in graph.node if n.op == "If")
        block = graph.library.function.add()
        block.signature.name = "block"
        args = ["x", "gamma", "beta", "mean", "variance", "training"]
        block.signature.input_arg.extend(pb.OpDef.ArgDef(name=a) for a in args)
        inner = block.node_def.add(name="cond", op="If")
        inner.input.extend(["training", *args[:5]])
        for attr in ("then_branch", "else_branch"):
            inner.attr[attr].func.name = cond.attr[attr].func.name
        graph.node.remove(cond)
        for i, value in enumerate(order):
            switch = graph.node.add(name=f"switch_{i}", op="Const")
            switch.attr["value"].tensor.bool_val.append(value)
            call = graph.node.add(name=f"call_{i}", op="PartitionedCall")
            call.input.extend(["x", *(f"bn/{r}" for r in ("gamma", "beta", "moving_mean", "moving_variance"))])
            call.input.append(switch.name)
            call.attr["f"].func.name = "block"
        (layer,) = _judged(graph).layers
        assert [b.how for b in layer.batch_statistics] == ["FusedBatchNormV3 with is_training=true (FusedBatchNormV3)"]
