"""The training graph beside a checkpoint (``<prefix>.meta``, or a TF1 SavedModel's "train" meta graph), digested.

Parsed with the ``protobuf`` runtime against the project's schema subset, never with
TensorFlow. The digest (:class:`GraphFacts`) keeps, per variable, only what the graph
rules consult: the moving-average ops that write it (``AssignMovingAvg*`` /
``AssignNewValue*``, fused or not, also inside ``cond`` branch functions), whether a
train op reaches them over data or control inputs, whether they are in UPDATE_OPS,
whether the Saver saves it, whether it is trainable, and the update's momentum.
Variables are found through the ops' inputs, never by name prefix: op and variable
scopes may differ (slim layers built under a name_scope).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import FormatError, InputError
from ..facts import GraphFacts, GraphLayer, GraphVariable, ModelFile
from ..naming import debiased_statistic
from .files import location
from .graph import ASSIGN_OPS, FUSED_BN, IF_OPS, VARIABLE_OPS, GraphIndex, input_name, variable_name
from .lfs import pointer_message, pointer_size
from .numbers import attribute_number
from .proto import tf_subset_pb2 as pb
from .structure import find_bn_layers

SAVE_OPS = frozenset({"SaveV2", "Save", "SaveSlices"})
_UPDATE_SCOPE = re.compile(r"(^|/)(AssignMovingAvg|AssignNewValue)[^/]*(/|$)")
_APPLY = re.compile(r"^(Resource)?(Sparse)?Apply[A-Z]")
NO_GRAPH = "; use --no-graph to ignore it"


# --------------------------------------------------------------------------- locate and parse


def graph_path_for(model: ModelFile) -> Path | None:
    """The graph file beside a TensorFlow checkpoint: ``<prefix>.meta``, or a SavedModel's ``saved_model.pb``."""
    file = model.main_file
    if not file.endswith(".index"):
        return None
    prefix = location(file[: -len(".index")])
    if model.format.startswith("SavedModel"):
        candidate = prefix.parent.parent / "saved_model.pb"
    else:
        candidate = location(f"{prefix}.meta")
    return candidate if candidate.is_file() else None


def graph_file(model: ModelFile, meta: str | None = None) -> Path | None:
    """The graph named by ``meta`` (``--meta``), else the one found beside the model, else None."""
    if meta is None:
        return graph_path_for(model)
    path = location(meta)
    if not path.is_file():
        raise InputError(f"{meta}: no such graph file (--meta)")
    return path


def parse_graph_file(path: Path, message: Any, unparsable: str) -> Any:
    """The protobuf ``message`` (a class) in the graph file ``path``; exit 2 saying why not (``unparsable``:
    what it is not), with the hint of ``--no-graph``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the graph ({exc.strerror or exc}){NO_GRAPH}") from None
    size = pointer_size(data)
    if size is not None:
        raise InputError(pointer_message(str(path), size) + NO_GRAPH)
    try:
        return message.FromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise FormatError(f"{path}: {unparsable}{NO_GRAPH}") from None


def read_graph(path: Path) -> GraphFacts:
    """Parse and digest the MetaGraphDef file ``path`` (``<prefix>.meta``)."""
    meta = parse_graph_file(path, pb.MetaGraphDef, "not a TensorFlow MetaGraphDef (unparsable)")
    return digest(meta, str(path))


def with_graph(model: ModelFile, path: Path) -> ModelFile:
    """``model`` with the training graph of the MetaGraphDef file ``path``."""
    facts = read_graph(path)
    return replace(model, graph=facts, structure=facts.layers, notes=(*model.notes, *facts.notes))


# --------------------------------------------------------------------------- digest


def _strings(tensor: Any) -> list[str]:
    return [s.decode("utf-8", "replace") for s in tensor.string_val]


def _collection(meta: Any, key: str) -> list[Any]:
    if key not in meta.collection_def:
        return []
    collection = meta.collection_def[key]
    kind = collection.WhichOneof("kind")
    return list(getattr(collection, kind).value) if kind else []


def _update_ops(graph: GraphIndex) -> Iterator[tuple[str, str, Any]]:
    """(variable, op name, node) of every moving-average update op, in the graph and in cond branches."""
    for node in graph.of_type(sorted(ASSIGN_OPS | IF_OPS)):
        if node.op in ASSIGN_OPS and node.input and _UPDATE_SCOPE.search(node.name):
            variable = graph.variable(node.input[0])
            if variable is not None:
                yield variable, node.name, node
        elif node.op in IF_OPS:
            for variable in dict.fromkeys(v for v, _ in _branch_updates(graph, node)):
                yield variable, node.name, None  # the If node stands for the ops of its branches


def _hand_written_updates(graph: GraphIndex, collected: set[str]) -> Iterator[tuple[str, str]]:
    """Assign ops the user put in UPDATE_OPS under other names (hand-written moving averages)."""
    for name in collected:
        node = graph.nodes.get(name)
        if node is not None and node.op in ASSIGN_OPS and node.input and not _UPDATE_SCOPE.search(name):
            variable = graph.variable(node.input[0])
            if variable is not None:
                yield variable, name


def _branch_updates(graph: GraphIndex, if_node: Any) -> Iterator[tuple[str, str]]:
    """Update ops inside the then/else functions of a cond_v2 ``If`` node, mapped to outer variables."""
    for attr in ("then_branch", "else_branch"):
        found = graph.branch(if_node, attr)
        if found is None:
            continue
        body = found[1]
        for node in body.of_type(sorted(ASSIGN_OPS)):
            if node.input and _UPDATE_SCOPE.search(node.name):
                variable = body.variable(node.input[0])
                if variable is not None:
                    yield variable, node.name


def _branch_assigns(graph: GraphIndex) -> dict[str, list[str]]:
    """Outer variable -> the ``If`` nodes whose branches assign it, whatever the assign's name."""
    found: dict[str, list[str]] = {}
    for node in graph.of_type(sorted(IF_OPS)):
        for attr in ("then_branch", "else_branch"):
            branch = graph.branch(node, attr)
            for assign in branch[1].of_type(sorted(ASSIGN_OPS)) if branch else ():
                variable = branch[1].variable(assign.input[0]) if assign.input else None
                if variable is not None and node.name not in found.get(variable, []):
                    found.setdefault(variable, []).append(node.name)
    return found


def _train_ops(graph: GraphIndex, meta: Any) -> list[str]:
    """The train_op collection (else the optimizer's apply ops), and the groups built on them.

    A group is a NoOp or Identity that depends on a train op (``tf.group(minimize_op,
    *update_ops)``, ``tf.control_dependencies([opt_op])`` around an EMA): running it runs
    the train op, so what it depends on runs too.
    """
    roots = [input_name(v) for v in _collection(meta, "train_op") if isinstance(v, str)]
    roots = [r for r in roots if r in graph.nodes]
    if not roots:
        roots = [n.name for op in graph.by_op if _APPLY.match(op) for n in graph.by_op[op]]
    found = dict.fromkeys(roots)
    groups = list(graph.of_type(("NoOp", "Identity")))
    for _ in range(8):
        grown = [n.name for n in groups if n.name not in found and any(input_name(i) in found for i in n.input)]
        if not grown:
            break
        found.update(dict.fromkeys(grown))
    return list(found)


def _saver(graph: GraphIndex, meta: Any) -> tuple[str | None, set[str]]:
    """The save op(s) of the graph's Saver and the tensor names they write."""
    scope = meta.saver_def.save_tensor_name.rpartition("/")[0] or "save"
    ops = [n for n in graph.of_type(sorted(SAVE_OPS)) if n.name.rpartition("/")[0] == scope]
    names: set[str] = set()
    for op in ops:
        const = graph.nodes.get(input_name(op.input[1])) if len(op.input) > 1 else None
        if const is not None and const.op == "Const":
            names.update(_strings(const.attr["value"].tensor))
    return (", ".join(op.name for op in ops) or None), names


def _trainable(meta: Any) -> set[str]:
    names = set()
    for raw in _collection(meta, "trainable_variables"):
        if isinstance(raw, bytes):
            try:
                names.add(variable_name(pb.VariableDef.FromString(raw).variable_name.split(":", 1)[0]))
            except DecodeError:
                continue
    return names


def _momentum(graph: GraphIndex, node: Any) -> tuple[float | None, str | None]:
    """1 - decay of one update op, or the placeholder its decay depends on."""
    if len(node.input) < 2:
        return None, None
    value = graph.nodes.get(input_name(node.input[1]))
    while value is not None and value.op == "Identity" and value.input:
        value = graph.nodes.get(input_name(value.input[0]))
    if value is None:
        return None, None
    if value.op in FUSED_BN and "exponential_avg_factor" in value.attr:  # AssignNewValue of a fused update
        factor = value.attr["exponential_avg_factor"].f
        return (_momentum_number(1.0 - factor) if factor < 1.0 else None), None
    if node.op in ("Assign", "AssignVariableOp") and value.op in ("Add", "AddV2"):
        # hand-written: old * momentum + batch * (1 - momentum)
        target = graph.variable(node.input[0])
        for ref in value.input:
            term = graph.nodes.get(input_name(ref))
            if term is not None and term.op == "Mul" and target in [graph.variable(i) for i in term.input]:
                factors = [graph.scalar(i) for i in term.input]
                return next((_momentum_number(f) for f in factors if f is not None), None), None
    if value.op != "Mul":
        return None, None
    for ref in value.input:
        factor = graph.scalar(ref)
        if factor is not None:
            return _momentum_number(1.0 - factor), None
    for ref in value.input:  # the side that is 1 - momentum: Sub(1.0, <momentum expression>)
        side = graph.nodes.get(input_name(ref))
        if side is not None and side.op == "Sub" and len(side.input) == 2 and graph.scalar(side.input[0]) == 1.0:
            return None, graph.placeholder_above(side.input[1])
    return None, None


def _momentum_number(value: float) -> float | None:
    return attribute_number(value, 6)  # 1 - decay, computed in float32: six digits are exact


def _epsilons(layers: Iterable[GraphLayer]) -> dict[str, float]:
    """epsilon per layer scope (that of its first scoped variable), from the BN layers found by structure."""
    found: dict[str, float] = {}
    for layer in layers:
        scoped = [name for name in layer.members.values() if "/" in name]
        if layer.epsilon is not None and scoped:
            found.setdefault(scoped[0].rpartition("/")[0], layer.epsilon)
    return found


def digest(meta: Any, path: str) -> GraphFacts:
    """Reduce a MetaGraphDef to :class:`GraphFacts`."""
    if not meta.graph_def.node or not all(n.name and n.op for n in meta.graph_def.node[:100]):
        raise FormatError(f"{path}: not a TensorFlow MetaGraphDef (no graph nodes){NO_GRAPH}")
    graph = GraphIndex.of(meta.graph_def)
    listed = {input_name(v) for v in _collection(meta, "update_ops") if isinstance(v, str)}
    updates: dict[str, list[tuple[str, Any]]] = {}
    for variable, op_name, node in _update_ops(graph):
        updates.setdefault(variable, []).append((op_name, node))
    named = set(updates)
    for variable, op_name in sorted(_hand_written_updates(graph, listed)):
        if variable not in named:
            updates.setdefault(variable, []).append((op_name, graph.nodes[op_name]))
    layers = tuple(find_bn_layers(graph))
    in_branches = None
    for layer in layers:  # hand-written moving averages of the batch statistics a BN layer normalises with
        for role, op_name in layer.updates.items():
            variable = layer.members[role]
            known = {op for op, _ in updates.get(variable, [])}
            if variable not in named and op_name in graph.nodes and op_name not in known:
                updates.setdefault(variable, []).append((op_name, graph.nodes[op_name]))
        for role in ("moving_mean", "moving_variance"):  # assigns of any name in a cond_v2 branch
            variable = layer.members.get(role)
            if variable is not None and variable not in updates:
                in_branches = _branch_assigns(graph) if in_branches is None else in_branches
                if variable in in_branches:
                    updates[variable] = [(op, None) for op in in_branches[variable]]
    update_ops = {op for ops in updates.values() for op, _ in ops}
    collected = graph.reachable(listed, update_ops)  # running UPDATE_OPS runs what its entries depend on
    train_ops = _train_ops(graph, meta)
    reached = graph.reachable(train_ops, update_ops)
    save_op, saved = _saver(graph, meta)
    trainable = _trainable(meta)
    shadows: dict[str, list[str]] = {}
    for shadow in updates:
        if shadow.endswith("/biased"):
            statistic = debiased_statistic(shadow.removesuffix("/biased"), updates)
            if statistic is not None:
                shadows.setdefault(statistic, []).append(shadow)
    variables: dict[str, GraphVariable] = {}
    for node in graph.of_type(sorted(VARIABLE_OPS)):
        name = variable_name(node.name)
        ops = updates.get(name, [])
        momentum, placeholder = None, None
        # a zero-debiased statistic is derived from its shadow: the shadow's update has the decay
        for _, op_node in ops + [u for shadow in shadows.get(name, ()) for u in updates.get(shadow, [])]:
            if op_node is not None and momentum is None and placeholder is None:
                momentum, placeholder = _momentum(graph, op_node)
        op_names = tuple(dict.fromkeys(op for op, _ in ops))
        variables[name] = GraphVariable(
            name,
            update_ops=op_names,
            updates_run=any(op in reached for op in op_names),
            updates_collected=any(op in collected for op in op_names),
            saved=(name in saved) if save_op else None,
            trainable=name in trainable,
            momentum=momentum,
            decay_placeholder=placeholder,
        )
    notes = []
    if not train_ops:
        notes.append(
            f"{Path(path).name}: no train op in the graph (no train_op collection, no optimizer apply ops): "
            "update-op rules BN101-BN103 not checked"
        )
    return GraphFacts(path, variables, tuple(train_ops), save_op, _epsilons(layers), tuple(notes), layers)
