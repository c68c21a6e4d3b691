"""One index over a TensorFlow graph, shared by every reader that has one.

The BN layers found by structure (:mod:`.structure`: frozen ``.pb``, ``.meta``, SavedModel)
and the training-graph digest (:mod:`.metagraph`) ask the same questions of the same
index: which variable or constant an input reads (through ``Identity``/``read``/``Switch``/
``Merge`` chains, function arguments and ``If`` outputs), which scalar a constant expression
is, which moving statistic a batch statistic is averaged into, what a set of ops depends on.

Graph shapes TensorFlow versions produced, all read here:

- TF <= 1.13 and slim/contrib in training mode: ``FusedBatchNorm``/``V2`` take **empty**
  ``Const`` nodes as mean and variance; outputs 1 and 2 (batch mean and variance) are what
  ``AssignMovingAvg`` ops average into the moving statistics
  (``AssignSub(moving, (moving - batch) * (1 - momentum))``).
- TF1 ``cond`` (``Switch``/``Merge``) around a training placeholder: the inference branch
  reads the moving statistic through a ``Switch``, the training branch the batch statistic;
  a ``Merge`` joins them.
- cond_v2 (``If`` with branch functions) in TF 1.15+/TF2 graphs.
- zero-debiased moving means (``zero_debias=True``): a shadow ``<moving_mean>/biased``
  averages the batch mean and the moving mean is computed from it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any

VARIABLE_OPS = frozenset({"VariableV2", "VarHandleOp", "Variable", "VariableV1"})
SOURCE_OPS = VARIABLE_OPS | {"Const"}
PASS_THROUGH = frozenset({"Identity", "ReadVariableOp", "Switch", "RefSwitch", "Enter", "RefEnter", "RefIdentity"})
MERGE_OPS = frozenset({"Merge", "RefMerge"})
ASSIGN_OPS = frozenset(
    {"Assign", "AssignVariableOp", "AssignSub", "AssignSubVariableOp", "AssignAdd", "AssignAddVariableOp"}
)
FUSED_BN = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
IF_OPS = frozenset({"If", "StatelessIf"})
ADD_OPS = frozenset({"Add", "AddV2"})
DT_FLOAT, DT_INT32, DT_INT64 = 1, 3, 9  # TensorFlow's DataType enum
# The ops a moving-average update computes its new value with, between the batch statistic and the assign.
# The batch statistic is where the walk stops: never into the op that computed it (a FusedBatchNorm's inputs).
_AVERAGING_OPS = frozenset(
    {"Sub", "Mul", "Add", "AddV2", "RealDiv", "Div", "Cast", "Squeeze", "Reshape", "ExpandDims"}
    | PASS_THROUGH
    | MERGE_OPS
)
_READ_DEPTH = 7  # hops from where a statistic is read back to the tensor an assign averages
_AVERAGE_DEPTH = 8  # hops from an assign's value back to the batch statistic (zero-debias takes about 6)
_DEBIAS_SHADOW = re.compile(r"/biased(_\d+)?$")  # zero_debias's shadow, named by TensorFlow in every version
# Output args of a function body's node references ('FusedBatchNormV3:batch_mean:0') as flat output indices.
_OUTPUT_OFFSET = {
    "batch_mean": 1,
    "batch_variance": 2,
    "reserve_space_1": 3,
    "reserve_space_2": 4,
    "reserve_space_3": 5,
    "output_true": 1,  # Switch
}


def input_name(ref: str) -> str:
    """Node name of an input reference ('^name', 'name:1', a function body's 'name:output:0')."""
    return ref.lstrip("^").split(":", 1)[0]


def tensor_name(ref: str) -> str:
    """One spelling per tensor: 'name' and 'name:0' are 'name:0'; 'name:batch_mean:0' is 'name:1'."""
    name, *rest = ref.lstrip("^").split(":")
    if len(rest) == 2:
        index = _OUTPUT_OFFSET.get(rest[0], 0) + (int(rest[1]) if rest[1].isdigit() else 0)
    else:
        index = int(rest[0]) if rest and rest[0].isdigit() else 0
    return f"{name}:{index}"


def variable_name(node_name: str) -> str:
    """The checkpoint name of a variable node (partition slices 'x/part_0' belong to 'x')."""
    head, sep, tail = node_name.rpartition("/part_")
    return head if sep and tail.isdigit() else node_name


def scalar_of(tensor: Any) -> float | None:
    """The one float in a TensorProto, or None."""
    for values in (tensor.float_val, tensor.double_val):
        if len(values) == 1:
            return float(values[0])
    if tensor.dtype == DT_FLOAT and len(tensor.tensor_content) == 4:
        return float(struct.unpack("<f", tensor.tensor_content)[0])
    return None


def ints_of(tensor: Any) -> list[int]:
    """The integers of an int32/int64 TensorProto (typed lists or little-endian content)."""
    if tensor.int_val or tensor.int64_val:
        return [int(v) for v in (*tensor.int_val, *tensor.int64_val)]
    if tensor.dtype in (DT_INT32, DT_INT64) and tensor.tensor_content:
        size = 4 if tensor.dtype == DT_INT32 else 8
        content = tensor.tensor_content[: len(tensor.tensor_content) // size * size]
        return list(struct.unpack(f"<{len(content) // size}{'i' if size == 4 else 'q'}", content))
    return []


def is_training(node: Any) -> bool:
    """A FusedBatchNorm* op's ``is_training``: true by TensorFlow's op registry when the attr is absent (a graph
    saved with default attrs stripped)."""
    return node.attr["is_training"].b if "is_training" in node.attr else True


def is_empty_const(node: Any) -> bool:
    """A constant with no elements: the mean/variance a training-mode FusedBatchNorm of TF <= 1.13 gets."""
    return node.op == "Const" and any(dim.size == 0 for dim in node.attr["value"].tensor.tensor_shape.dim)


class GraphIndex:
    """Nodes by name and op, their consumers, and what the graph's inputs trace back to.

    ``GraphIndex(graph_def.node, functions)`` indexes a graph; a function it calls (an ``If``
    branch, a ``PartitionedCall``) gets its own index whose ``parent`` is the graph around it and
    whose ``args`` map the function's argument names to the outer references they receive.
    :meth:`settled` gives the same graph with the nodes a TF1 ``cond`` turns off left out of
    ``Merge`` s (an inference graph's reading).
    """

    dead: frozenset[str] = frozenset()  # nodes that do not run (the off side of a settled Switch)
    choose: Callable[[GraphIndex, str], bool | None] | None = None  # an If's predicate -> the branch that runs

    def __init__(
        self,
        nodes: Iterable[Any],
        functions: Mapping[str, Any] | None = None,
        parent: GraphIndex | None = None,
        args: Mapping[str, str] | None = None,
    ) -> None:
        self.nodes: dict[str, Any] = {}
        self.by_op: dict[str, list[Any]] = {}
        for node in nodes:
            self.nodes[node.name] = node
            self.by_op.setdefault(node.op, []).append(node)
        self.functions = functions or {}  # the library by name, for If nodes (cond_v2)
        self.parent = parent
        self.args = args or {}
        self._calls: dict[tuple[str, str], tuple[Any, GraphIndex] | None] = {}

    def settled(self, dead: frozenset[str], choose: Callable[[GraphIndex, str], bool | None]) -> GraphIndex:
        """This graph as an inference run reads it: the ``dead`` nodes left out of every ``Merge``, and only the
        branch ``choose`` (an ``If``'s predicate -> True, False or None: either) picks of each ``If``, here and in
        the functions it calls."""
        index = GraphIndex((), self.functions, self.parent, self.args)
        index.nodes, index.by_op, index.dead, index.choose = self.nodes, self.by_op, dead, choose
        return index

    @classmethod
    def of(cls, graph_def: Any) -> GraphIndex:
        """An index over a GraphDef and its function library."""
        return cls(graph_def.node, {f.signature.name: f for f in graph_def.library.function})

    def of_type(self, ops: Iterable[str]) -> Iterator[Any]:
        for op in ops:
            yield from self.by_op.get(op, ())

    @cached_property
    def consumers(self) -> dict[str, list[Any]]:
        """Node name -> the nodes that take one of its outputs as a data input."""
        found: dict[str, list[Any]] = {}
        for node in self.nodes.values():
            for ref in node.input:
                if not ref.startswith("^"):
                    found.setdefault(input_name(ref), []).append(node)
        return found

    # ------------------------------------------------------------------ what an input reads

    def source(self, ref: str, hops: int = 8) -> Any | None:
        """The variable or constant node an input reads, through pass-through chains, function
        arguments, ``If`` outputs and ``Merge`` (the side that reads a variable: the inference side of
        a TF1 cond; in a frozen graph, its one constant)."""
        name = input_name(ref)
        while hops > 0:
            if name in self.args and name not in self.nodes and self.parent is not None:
                return self.parent.source(self.args[name], hops)
            node = self.nodes.get(name)
            if node is None:
                return None
            if node.op in SOURCE_OPS:
                return node
            if node.op in IF_OPS:
                return self._through_if(node, ref, hops - 1)
            if node.op in FUSED_BN and not is_training(node):  # outputs 1, 2 pass the mean and variance through
                output = int(tensor_name(ref).rpartition(":")[2])
                if output in (1, 2) and len(node.input) > output + 2:
                    ref = node.input[output + 2]
                    name, hops = input_name(ref), hops - 1
                    continue
            if node.op in MERGE_OPS:  # a variable on one side (else one constant: a frozen graph's cond)
                live = [i for i in node.input if i[0] != "^" and input_name(i) not in self.dead]
                found = [n for i in live if (n := self.source(i, hops - 1)) is not None]
                variables = [n for n in found if n.op in VARIABLE_OPS]
                constants = [n for n in found if n.op == "Const" and not is_empty_const(n)]
                return variables[0] if variables else constants[0] if len(constants) == 1 else None
            if node.op not in PASS_THROUGH or not node.input:
                return None
            ref = node.input[0]
            name, hops = input_name(ref), hops - 1
        return None

    def variable(self, ref: str) -> str | None:
        """The checkpoint name of the variable an input reads, or None."""
        node = self.source(ref)
        return variable_name(node.name) if node is not None and node.op in VARIABLE_OPS else None

    def scalar(self, ref: str, hops: int = 6) -> float | None:
        """A scalar float constant expression: a Const, through pass-through ops and Cast, or the Sub of two.

        Never through a ``Merge`` or an ``If``: a value chosen at run time (``cond(training, 0.99, 1.0)``)
        is not a constant."""
        name = input_name(ref)
        if name in self.args and name not in self.nodes and self.parent is not None:
            return self.parent.scalar(self.args[name], hops)
        node = self.nodes.get(name)
        if node is None or hops <= 0:
            return None
        if node.op == "Const":
            return scalar_of(node.attr["value"].tensor)
        if (node.op in PASS_THROUGH or node.op == "Cast") and node.input:
            return self.scalar(node.input[0], hops - 1)
        if node.op == "Sub" and len(node.input) >= 2:
            a, b = self.scalar(node.input[0], hops - 1), self.scalar(node.input[1], hops - 1)
            return None if a is None or b is None else a - b
        return None

    def batch_mean_above(self, ref: str, depth: int = 6) -> bool:
        """Whether ``ref`` is computed, within ``depth`` hops, from a ``Mean`` over axis 0 (the moments of a
        batch, as ``tf.nn.moments`` computes them for BN; layer normalisation reduces other axes)."""
        seen, frontier = set(), [ref]
        for _ in range(depth):
            following = []
            for item in frontier:
                name = input_name(item)
                node = self.nodes.get(name)
                if node is None or name in seen or node.op in SOURCE_OPS:
                    continue
                seen.add(name)
                if node.op == "Mean" and len(node.input) == 2:
                    axes = self.nodes.get(input_name(node.input[1]))
                    if axes is not None and axes.op == "Const" and 0 in ints_of(axes.attr["value"].tensor):
                        return True
                following += [i for i in node.input if not i.startswith("^")]
            frontier = following
        return False

    def placeholder_above(self, ref: str, depth: int = 8) -> str | None:
        """A PlaceholderWithDefault that ``ref`` depends on within ``depth`` hops (e.g. keras_learning_phase)."""
        seen, frontier = set(), [input_name(ref)]
        for _ in range(depth):
            following = []
            for name in frontier:
                node = self.nodes.get(name)
                if node is None or name in seen:
                    continue
                seen.add(name)
                if node.op == "PlaceholderWithDefault":
                    return name
                following += [input_name(i) for i in node.input]
            frontier = following
        return None

    def reachable(self, roots: Iterable[str], targets: set[str]) -> set[str]:
        """The targets that the roots depend on through data or control inputs."""
        seen = set(roots)
        stack = list(seen)
        nodes = self.nodes
        while stack:
            node = nodes.get(stack.pop())
            if node is None:
                continue
            for ref in node.input:
                name = ref[1:] if ref[0] == "^" else ref.partition(":")[0]
                if name not in seen:
                    seen.add(name)
                    stack.append(name)
        return seen & targets

    # ------------------------------------------------------------------ function calls

    def call(self, node: Any, function_name: str, inputs: Iterable[str]) -> tuple[Any, GraphIndex] | None:
        """The function ``node`` calls by name and an index over its body whose arguments are ``inputs`` (the
        references the caller passes), or None when the library has no such function."""
        key = (node.name, function_name)
        if key not in self._calls:
            function = self.functions.get(function_name)
            if function is None:
                self._calls[key] = None
            else:
                names = [arg.name for arg in function.signature.input_arg]
                args = dict(zip(names, inputs, strict=False))
                callee = GraphIndex(function.node_def, self.functions, self, args)
                callee.choose = self.choose
                self._calls[key] = (function, callee)
        return self._calls[key]

    def branch(self, if_node: Any, attr: str) -> tuple[Any, GraphIndex] | None:
        """The function of one branch (``then_branch``/``else_branch``) of an ``If`` node and an index over its body."""
        if attr not in if_node.attr:
            return None
        return self.call(if_node, if_node.attr[attr].func.name, list(if_node.input)[1:])

    def boolean(self, ref: str, hops: int = 8) -> tuple[bool | None, str | None, bool]:
        """The value a boolean input has when nothing is fed: a ``Const``, the default of a
        ``PlaceholderWithDefault``, through ``Identity``, ``LogicalNot`` and function arguments; the
        placeholder it depends on (None: a constant); whether it is that placeholder negated.
        ``(None, name, inverted)``: a placeholder without a default, or an argument nothing binds (fed by the
        caller); ``(None, None, False)``: a value computed at run time."""
        name = input_name(ref)
        if name in self.args and name not in self.nodes and self.parent is not None:
            return self.parent.boolean(self.args[name], hops)
        node = self.nodes.get(name)
        if node is None:  # an input of the function the walk started in: the caller feeds it
            return None, name, False
        if hops <= 0:
            return None, None, False
        if node.op == "Const":
            values = node.attr["value"].tensor.bool_val
            return (bool(values[0]) if len(values) == 1 else None), None, False
        if node.op == "PlaceholderWithDefault":
            value = self.boolean(node.input[0], hops - 1)[0] if node.input else None
            return value, name, False
        if node.op == "Placeholder":
            return None, name, False
        if node.op in ("Identity", "LogicalNot") and node.input:
            value, placeholder, inverted = self.boolean(node.input[0], hops - 1)
            negate = node.op == "LogicalNot"
            return (None if value is None else value != negate), placeholder, inverted != negate
        return None, None, False

    def _through_if(self, if_node: Any, ref: str, hops: int) -> Any | None:
        """What output ``ref`` of a cond_v2 ``If`` returns, in the first branch where it is a source."""
        output = int(tensor_name(ref).rpartition(":")[2])
        value = self.choose(self, if_node.input[0]) if self.choose is not None and if_node.input else None
        attrs = ("else_branch", "then_branch") if value is None else ("then_branch",) if value else ("else_branch",)
        for attr in attrs:  # else first: training False, the moving statistics
            found = self.branch(if_node, attr)
            if found is None or output >= len(found[0].signature.output_arg):
                continue
            returned = found[0].ret.get(found[0].signature.output_arg[output].name)
            node = found[1].source(returned, hops) if returned and hops > 0 else None
            if node is not None:
                return node
        return None

    # ------------------------------------------------------------------ moving averages

    def averaged(self, ref: str, variable: Any | None = None) -> tuple[Any, str] | None:
        """The variable that an assign op averages the tensor ``ref`` (a batch statistic) into, and that op;
        with ``variable``, only an assign into that variable counts.

        ``ref`` is looked up as read (an Identity after the updates by control dependency, either side of a
        TF1 cond's Merge) and above. A zero-debiased average writes the batch statistic into a shadow
        (``.../moving_mean/biased``) first: the statistic is the variable computed from the shadow.
        """
        for tensor in self._upward(ref, _READ_DEPTH, _read_inputs):
            for target, op in self._averages.get(tensor, ()):
                target, op = self._debiased(target, op)
                if variable is None or target is variable:
                    return target, op
        return None

    def _debiased(self, target: Any, op: str) -> tuple[Any, str]:
        """The statistic a zero-debias shadow stands for (the variable an assign computes from the shadow)."""
        if not _DEBIAS_SHADOW.search(target.name):
            return target, op
        for reader, reader_op in self._averages.get(f"{target.name}:0", ()):
            if reader is not target and not _DEBIAS_SHADOW.search(reader.name):
                return reader, reader_op
        return target, op

    @cached_property
    def _averages(self) -> dict[str, list[tuple[Any, str]]]:
        """Tensor -> the (variable node, assign op name) of every assign whose new value is computed from it."""
        found: dict[str, list[tuple[Any, str]]] = {}
        for node in self.of_type(sorted(ASSIGN_OPS)):
            target = self.source(node.input[0]) if len(node.input) >= 2 else None
            if target is None or target.op not in VARIABLE_OPS:
                continue
            for tensor in self._upward(node.input[1], _AVERAGE_DEPTH, _averaging_operands):
                found.setdefault(tensor, []).append((target, node.name))
        return found

    def _upward(self, ref: str, depth: int, above: Callable[[Any], list[str]]) -> Iterator[str]:
        """The tensors from ``ref`` upward, breadth first, each once, at most ``depth`` hops away; ``above(node)``
        names the inputs of a node the walk goes on through."""
        frontier, seen = [ref], set()
        for _ in range(depth + 1):
            following = []
            for item in frontier:
                tensor = tensor_name(item)
                if tensor in seen:
                    continue
                seen.add(tensor)
                yield tensor
                node = self.nodes.get(input_name(item))
                if node is not None:
                    following += above(node)
            frontier = following


def _read_inputs(node: Any) -> list[str]:
    """What a node passes on as read: the first input of a pass-through op, either side of a Merge."""
    if node.op in MERGE_OPS:
        return [ref for ref in node.input if ref[0] != "^"]
    return list(node.input[:1]) if node.op in PASS_THROUGH else []


def _averaging_operands(node: Any) -> list[str]:
    """The operands of averaging arithmetic (data inputs); of an assign passed through (a debias shadow's
    update), its value."""
    if node.op in _AVERAGING_OPS:
        return [ref for ref in node.input if ref[0] != "^"]
    return [node.input[1]] if node.op in ASSIGN_OPS and len(node.input) >= 2 else []
