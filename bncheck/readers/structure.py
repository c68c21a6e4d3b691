"""BatchNormalization found by the structure of a TensorFlow graph, not by names.

Shared by every reader that has a graph (frozen ``.pb``, ``.meta``, SavedModel). Two
patterns are recognised:

- a ``FusedBatchNorm``/``V2``/``V3`` node: inputs 1-4 are scale, offset, mean, variance;
  epsilon is its attr;
- ``tf.nn.batch_normalization`` unfused: ``Rsqrt(variance + epsilon)``, multiplied by
  the scale, that product multiplied by the mean and subtracted from the offset
  (``offset - mean * inv``, or ``Neg`` without offset).

Each input is traced back to a variable or a constant by the shared
:class:`~bncheck.readers.graph.GraphIndex`. When the mean or variance is a batch statistic
(training mode: a tensor computed from the batch, or the empty constants of a fused op of
TF <= 1.13), the moving statistic is the variable whose assign op averages that batch
statistic (``tf.assign(pop_mean, pop_mean * d + batch_mean * (1 - d))``, ``AssignMovingAvg``
of the op's outputs 1 and 2).
A pattern counts as a BN layer only when a moving statistic is found: layer
normalisation and batch-statistics-only BN share the arithmetic but keep none.

Each reading also says whether the op normalises with batch statistics (``Found.batch``): a
fused op with ``is_training`` true (its registry default when the attr is absent), or the unfused
pattern over a batch statistic (averaged into a moving statistic, or the moments of a ``Mean``
over axis 0). Training graphs do so legitimately; :mod:`.exported` judges inference graphs by it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..facts import GraphLayer
from .graph import (
    ADD_OPS,
    FUSED_BN,
    IF_OPS,
    VARIABLE_OPS,
    GraphIndex,
    input_name,
    is_empty_const,
    is_training,
    variable_name,
)
from .numbers import attribute_number

FUSED_DEFAULT_EPSILON = 1e-4  # the attr's default in TensorFlow's op registry


def _statistic(index: GraphIndex, ref: str | None, batch_ref: str | None = None) -> tuple[Any | None, str | None]:
    """The moving statistic behind an input, and the op averaging into it when it is a batch statistic.

    The input reads a variable or constant: that is the statistic (a variable, with the assign that
    averages into it when the input also reads the batch statistic: a TF1 cond). Else the input is a batch
    statistic (unfused training mode): the statistic is the variable an assign averages it into.
    An empty constant (a training-mode FusedBatchNorm of TF <= 1.13) stands for nothing: the
    statistic is the variable the op's own batch-statistic output ``batch_ref`` is averaged into.
    """
    node = index.source(ref) if ref else None
    if node is not None and node.op in VARIABLE_OPS:  # and the assign that averages into it, read beside it
        found = index.averaged(ref, node) if ref else None
        return node, found[1] if found else None
    if node is not None and not is_empty_const(node):
        return node, None
    for candidate in (batch_ref,) if node is not None else (ref, batch_ref):
        found = index.averaged(candidate) if candidate else None
        if found is not None:
            return found
    return None, None


class Found(NamedTuple):
    """One op's reading of a BN layer."""

    sources: dict[str, Any]  # role -> the variable or constant node it reads
    updates: dict[str, str]  # role -> the assign op averaging a batch statistic into it
    epsilon: float | None
    batch: str = ""  # how the op normalises with batch statistics (training mode); empty: with the moving ones


NOT_BN = Found({}, {}, None)


def normalisation(index: GraphIndex, node: Any) -> Found | None:
    """The BN layer ``node`` normalises with (a fused op, or the ``Rsqrt`` of the unfused pattern), or None."""
    if node.op in FUSED_BN:
        return _fused(index, node)
    if node.op == "Rsqrt":
        return _unfused(index, node)
    return None


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
    return Found(found, updates, epsilon, f"{node.op} with is_training=true" if is_training(node) else "")


def _unfused(index: GraphIndex, rsqrt: Any) -> Found:
    """The tf.nn.batch_normalization pattern around one Rsqrt node."""
    add = index.nodes.get(input_name(rsqrt.input[0])) if rsqrt.input else None
    if add is None or add.op not in ADD_OPS or len(add.input) != 2:
        return NOT_BN
    constants = [index.scalar(ref) for ref in add.input]
    if constants.count(None) != 1:
        return NOT_BN
    epsilon = next(c for c in constants if c is not None)
    found: dict[str, Any] = {}
    updates: dict[str, str] = {}
    variance = add.input[constants.index(None)]
    found["moving_variance"], op = _statistic(index, variance)
    batched = not _reads_statistic(index, variance)
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
    # batch statistics: averaged into a moving statistic, or (a frozen training graph keeps no moving statistics)
    # the moments of the batch
    batched = batched and (found["moving_variance"] is not None or index.batch_mean_above(variance))
    return Found(found, updates, epsilon, "the moments of the batch (unfused)" if batched else "")


def _reads_statistic(index: GraphIndex, ref: str) -> bool:
    """Whether an input reads a variable or a constant (the moving statistic), not a tensor computed from the
    batch."""
    node = index.source(ref)
    return node is not None and not is_empty_const(node)


def _scope(name: str) -> str:
    return name.rpartition("/")[0]


def layer_name(members: dict[str, str], op: str) -> str:
    scopes = {_scope(name) for name in members.values()}
    if len(scopes) == 1 and (scope := scopes.pop()):
        return scope
    return _scope(op) or op


def find_bn_layers(index: GraphIndex) -> list[GraphLayer]:
    """The BN layers a graph computes, one per set of variables (a layer built twice, e.g. in
    both branches of a ``cond``, counts once), also inside the branch functions of ``If`` nodes."""
    layers: dict[frozenset[tuple[str, str]], GraphLayer] = {}
    _scan(index, layers, "", _FUNCTION_DEPTH)
    return dedupe_layers(list(layers.values()))


_FUNCTION_DEPTH = 4


def _scan(
    index: GraphIndex,
    layers: dict[frozenset[tuple[str, str]], GraphLayer],
    where: str,
    depth: int,
) -> None:
    for node in index.nodes.values():
        reading = normalisation(index, node)
        if reading is not None:
            found, updates, epsilon = reading.sources, reading.updates, reading.epsilon
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
                layer_name(members, op), members, attribute_number(epsilon), op, {} if where else updates
            )


def dedupe_layers(layers: list[GraphLayer]) -> list[GraphLayer]:
    """Keep the fullest reading of a layer seen by several ops (training and inference branches), in graph order."""
    fullest = sorted(layers, key=lambda layer: -len(layer.members))
    kept: list[GraphLayer] = []
    for layer in fullest:
        values = set(layer.members.items())
        if not any(values <= set(other.members.items()) for other in kept):
            kept.append(layer)
    return [layer for layer in layers if layer in kept]
