"""BatchNormalization found by the structure of a TensorFlow graph, not by names.

Shared by every reader that has a graph (frozen ``.pb``, ``.meta``, SavedModel). Two
patterns are recognised:

- a ``FusedBatchNorm``/``V2``/``V3`` node: inputs 1-4 are scale, offset, mean, variance;
  epsilon is its attr;
- ``tf.nn.batch_normalization`` unfused: ``Rsqrt(variance + epsilon)``, multiplied by
  the scale, that product multiplied by the mean and subtracted from the offset
  (``offset - mean * inv``, or ``Neg`` without offset).

Each input is traced back through ``Identity``/``read``/``Switch`` nodes to a variable or
a constant. When the mean or variance is a batch statistic (training mode), the moving
statistic is the variable whose assign op averages that batch statistic
(``tf.assign(pop_mean, pop_mean * d + batch_mean * (1 - d))``, ``AssignMovingAvg``).
A pattern counts as a BN layer only when a moving statistic is found: layer
normalisation and batch-statistics-only BN share the arithmetic but keep none.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import Any

from ..model import GraphLayer
from .numbers import attribute_number

VARIABLE_OPS = frozenset({"VariableV2", "VarHandleOp", "Variable", "VariableV1"})
SOURCE_OPS = VARIABLE_OPS | {"Const"}
PASS_THROUGH = frozenset({"Identity", "ReadVariableOp", "Switch", "RefSwitch", "Enter", "RefEnter", "RefIdentity"})
ASSIGN_OPS = frozenset(
    {"Assign", "AssignVariableOp", "AssignSub", "AssignSubVariableOp", "AssignAdd", "AssignAddVariableOp"}
)
FUSED_BN = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
ADD_OPS = frozenset({"Add", "AddV2"})
IF_OPS = frozenset({"If", "StatelessIf"})
FUSED_DEFAULT_EPSILON = 1e-4  # the attr's default in TensorFlow's op registry
DT_FLOAT = 1  # TensorFlow's DataType enum
_AVERAGE_DEPTH = 4  # hops from an assign's value back to the batch statistic it averages


def input_name(ref: str) -> str:
    """Node name of an input reference ('^name', 'name:1')."""
    return ref.lstrip("^").split(":", 1)[0]


def _tensor(ref: str) -> str:
    """'name' and 'name:0' are one tensor."""
    name, _, index = ref.partition(":")
    return f"{name}:{index or 0}"


def variable_name(node_name: str) -> str:
    """The checkpoint name of a variable node (partition slices 'x/part_0' belong to 'x')."""
    head, sep, tail = node_name.rpartition("/part_")
    return head if sep and tail.isdigit() else node_name


class GraphIndex:
    """Nodes by name, their consumers, and what the graph's assign ops average."""

    def __init__(
        self,
        nodes: Mapping[str, Any],
        parent: GraphIndex | None = None,
        args: Mapping[str, str] | None = None,
        functions: Mapping[str, Any] | None = None,
    ) -> None:
        self.nodes = nodes
        self.parent = parent  # the graph around a function body (a cond branch), whose inputs ``args`` name
        self.args = args or {}  # function argument name -> the outer input reference it receives
        self.functions = functions or {}  # the library, for If nodes (cond_v2)
        self.consumers: dict[str, list[Any]] = {}
        for node in nodes.values():
            for ref in node.input:
                if not ref.startswith("^"):
                    self.consumers.setdefault(input_name(ref), []).append(node)
        self._averaged: dict[str, tuple[str, str]] | None = None  # tensor -> (variable, assign op)
        self._branches: dict[tuple[str, str], tuple[Any, GraphIndex] | None] = {}

    def source(self, ref: str, hops: int = 8) -> Any | None:
        """The variable or constant node an input reference reads, through pass-through chains."""
        name = input_name(ref)
        while hops:
            if name in self.args and name not in self.nodes and self.parent is not None:
                return self.parent.source(self.args[name], hops)
            node = self.nodes.get(name)
            if node is None:
                return None
            if node.op in SOURCE_OPS:
                return node
            if node.op in IF_OPS:
                return self._through_if(node, ref, hops - 1)
            if node.op not in PASS_THROUGH or not node.input:
                return None
            name, ref, hops = input_name(node.input[0]), node.input[0], hops - 1
        return None

    def branch(self, if_node: Any, attr: str) -> tuple[Any, GraphIndex] | None:
        """The function of one branch of an ``If`` node and an index over its body."""
        key = (if_node.name, attr)
        if key not in self._branches:
            function = self.functions.get(if_node.attr[attr].func.name) if attr in if_node.attr else None
            if function is None:
                self._branches[key] = None
            else:
                names = [arg.name for arg in function.signature.input_arg]
                args = dict(zip(names, list(if_node.input)[1:], strict=False))
                body = GraphIndex({n.name: n for n in function.node_def}, self, args, self.functions)
                self._branches[key] = (function, body)
        return self._branches[key]

    def _through_if(self, if_node: Any, ref: str, hops: int) -> Any | None:
        """What output ``ref`` of a cond_v2 ``If`` returns, in the first branch where it is a source."""
        index = ref.partition(":")[2]
        output = int(index) if index.isdigit() else 0
        for attr in ("else_branch", "then_branch"):  # else: training False, the moving statistics
            found = self.branch(if_node, attr)
            if found is None or output >= len(found[0].signature.output_arg):
                continue
            returned = found[0].ret.get(found[0].signature.output_arg[output].name)
            node = found[1].source(returned, hops) if returned and hops > 0 else None
            if node is not None:
                return node
        return None

    def scalar(self, ref: str) -> float | None:
        node = self.source(ref)
        if node is None or node.op != "Const":
            return None
        tensor = node.attr["value"].tensor
        for values in (tensor.float_val, tensor.double_val):
            if len(values) == 1:
                return float(values[0])
        if len(tensor.tensor_content) == 4 and tensor.dtype == DT_FLOAT:
            return float(struct.unpack("<f", tensor.tensor_content)[0])
        return None

    def averaged(self, ref: str) -> tuple[Any, str] | None:
        """The variable whose assign op averages the tensor ``ref`` (a batch statistic), and that op."""
        if self._averaged is None:
            self._averaged = {}
            for node in self.nodes.values():
                if node.op in ASSIGN_OPS and len(node.input) >= 2:
                    target = self.source(node.input[0])
                    if target is not None and target.op in VARIABLE_OPS:
                        for tensor in self._expression(node.input[1]):
                            self._averaged.setdefault(tensor, (target.name, node.name))
        found = self._averaged.get(_tensor(ref))
        return (self.nodes[found[0]], found[1]) if found else None

    def _expression(self, ref: str) -> Iterator[str]:
        """The tensors within a few hops above ``ref`` (data inputs only)."""
        frontier, seen = [ref], set()
        for _ in range(_AVERAGE_DEPTH + 1):
            following = []
            for item in frontier:
                tensor = _tensor(item)
                if tensor in seen:
                    continue
                seen.add(tensor)
                yield tensor
                node = self.nodes.get(input_name(item))
                if node is not None and node.op not in SOURCE_OPS:
                    following += [i for i in node.input if not i.startswith("^")]
            frontier = following


def _statistic(index: GraphIndex, ref: str | None, batch_ref: str | None = None) -> tuple[Any | None, str | None]:
    """The moving statistic behind an input: the variable/constant it reads, else the variable
    that averages it (or the op's own batch-statistic output ``batch_ref``) and the averaging op."""
    node = index.source(ref) if ref else None
    if node is not None and not _empty_const(node):
        return node, None
    for candidate in (ref, batch_ref):
        if candidate:
            found = index.averaged(candidate)
            if found is not None:
                return found
    return None, None


def _empty_const(node: Any) -> bool:
    """The empty mean/variance constants a training-mode FusedBatchNorm gets."""
    if node.op != "Const":
        return False
    shape = node.attr["value"].tensor.tensor_shape
    return any(dim.size == 0 for dim in shape.dim)


Found = tuple[dict[str, Any], dict[str, str], float | None]  # role -> source node, role -> averaging op, epsilon


def _fused(index: GraphIndex, node: Any) -> Found:
    inputs = list(node.input) + [""] * 5
    found = {"gamma": index.source(inputs[1]) if inputs[1] else None}
    found["beta"] = index.source(inputs[2]) if inputs[2] else None
    updates = {}
    for role, ref, output in (("moving_mean", inputs[3], 1), ("moving_variance", inputs[4], 2)):
        found[role], op = _statistic(index, ref, f"{node.name}:{output}")
        if op:
            updates[role] = op
    epsilon = node.attr["epsilon"].f if "epsilon" in node.attr else FUSED_DEFAULT_EPSILON
    return found, updates, epsilon


def _unfused(index: GraphIndex, rsqrt: Any) -> Found:
    """The tf.nn.batch_normalization pattern around one Rsqrt node."""
    add = index.nodes.get(input_name(rsqrt.input[0])) if rsqrt.input else None
    if add is None or add.op not in ADD_OPS or len(add.input) != 2:
        return {}, {}, None
    constants = [index.scalar(ref) for ref in add.input]
    if constants.count(None) != 1:
        return {}, {}, None
    epsilon = next(c for c in constants if c is not None)
    found: dict[str, Any] = {}
    updates: dict[str, str] = {}
    found["moving_variance"], op = _statistic(index, add.input[constants.index(None)])
    if op:
        updates["moving_variance"] = op
    scaled = rsqrt
    for mul in index.consumers.get(rsqrt.name, ()):
        if mul.op == "Mul" and len(mul.input) == 2:
            other = mul.input[1] if input_name(mul.input[0]) == rsqrt.name else mul.input[0]
            gamma = index.source(other)
            if gamma is not None:
                found["gamma"], scaled = gamma, mul
                break
    for mul in index.consumers.get(scaled.name, ()):
        if mul.op != "Mul" or len(mul.input) != 2:
            continue
        for user in index.consumers.get(mul.name, ()):
            if user.op == "Sub" and len(user.input) == 2 and input_name(user.input[1]) == mul.name:
                found["beta"] = index.source(user.input[0])
            elif user.op != "Neg":
                continue
            other = mul.input[1] if input_name(mul.input[0]) == scaled.name else mul.input[0]
            found["moving_mean"], op = _statistic(index, other)
            if op:
                updates["moving_mean"] = op
            break
    return found, updates, epsilon


def _scope(name: str) -> str:
    return name.rpartition("/")[0]


def _layer_name(members: dict[str, str], op: str) -> str:
    scopes = {_scope(name) for name in members.values()}
    if len(scopes) == 1 and (scope := scopes.pop()):
        return scope
    return _scope(op) or op


def find_bn_layers(nodes: Mapping[str, Any], functions: Mapping[str, Any] | None = None) -> list[GraphLayer]:
    """The BN layers a graph computes, one per set of variables (a layer built twice, e.g. in
    both branches of a ``cond``, counts once). ``functions``: the graph's function library by
    name, for the branches of ``If`` nodes (cond_v2)."""
    layers: dict[frozenset[tuple[str, str]], GraphLayer] = {}
    _scan(GraphIndex(nodes, functions=functions), layers, "", _FUNCTION_DEPTH)
    return _dedupe(list(layers.values()))


_FUNCTION_DEPTH = 4


def _scan(
    index: GraphIndex,
    layers: dict[frozenset[tuple[str, str]], GraphLayer],
    where: str,
    depth: int,
) -> None:
    for node in index.nodes.values():
        if node.op in FUSED_BN:
            found, updates, epsilon = _fused(index, node)
        elif node.op == "Rsqrt":
            found, updates, epsilon = _unfused(index, node)
        elif node.op in IF_OPS and depth:
            for attr in ("then_branch", "else_branch"):
                found = index.branch(node, attr)
                if found is not None:
                    _scan(found[1], layers, f"{node.name}/", depth - 1)
            continue
        else:
            continue
        members = {role: variable_name(source.name) for role, source in found.items() if source is not None}
        if not {"moving_mean", "moving_variance"} & members.keys():
            continue
        key = frozenset(members.items())
        if key not in layers:
            op = f"{where}{node.name}"
            layers[key] = GraphLayer(
                _layer_name(members, op), members, attribute_number(epsilon), op, {} if where else updates
            )


def _dedupe(layers: list[GraphLayer]) -> list[GraphLayer]:
    """Keep the fullest reading of a layer seen by several ops (training and inference branches), in graph order."""
    fullest = sorted(layers, key=lambda layer: -len(layer.members))
    kept: list[GraphLayer] = []
    for layer in fullest:
        values = set(layer.members.items())
        if not any(values <= set(other.members.items()) for other in kept):
            kept.append(layer)
    return [layer for layer in layers if layer in kept]
