"""Frozen TensorFlow graphs: a ``GraphDef`` (``.pb``) whose variables became ``Const`` nodes.

Parsed with the project's protobuf subset, never with TensorFlow. Every floating-point
constant is a :class:`Variable` named by its node (decoded only when a rule needs it);
BN layers come from the graph's structure, names being the fallback; the graph is an
inference entry point (:mod:`.exported`): a layer it normalises with batch statistics gets BN013.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import FormatError, InputError
from ..facts import Framework, ModelFile, Variable
from .exported import Entry, judge, judged_layers, notes_of
from .graph import GraphIndex
from .lfs import pointer_size
from .proto import tf_subset_pb2 as pb

FORMAT = "frozen GraphDef"
# TensorFlow DataType -> (numpy dtype, the TensorProto field holding typed values)
DTYPES: dict[int, tuple[str, str]] = {
    pb.DT_FLOAT: ("<f4", "float_val"),
    pb.DT_DOUBLE: ("<f8", "double_val"),
    pb.DT_HALF: ("<f2", "half_val"),
}
MAX_ELEMENTS = 1 << 28  # a constant larger than 1 GiB of float32 is not a BN statistic: a corrupt shape
_SNIFF_BYTES = 1 << 16
FIX = "freeze a graph built with training=False (or a tf.compat.v1.placeholder_with_default(False) switch)"


def looks_like_graph_def(path: Path) -> bool:
    """Whether ``path`` starts like a serialized GraphDef (a first node with a name and an op), or is a Git LFS
    pointer that may stand in for one (so that a directory scan reports it instead of skipping it)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF_BYTES)
    except OSError:
        return False
    if pointer_size(head) is not None:
        return True
    if len(head) < 2 or head[0] != 0x0A:  # field 1 (node), length-delimited
        return False
    length, at = 0, 1
    for shift in range(0, 35, 7):
        if at >= len(head):
            return False
        byte = head[at]
        at += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    chunk = head[at : at + length] if at + length <= len(head) else None
    if chunk is None:
        return len(head) == _SNIFF_BYTES  # a first node larger than the sniff window: let the parser judge
    try:
        node = pb.NodeDef.FromString(chunk)
    except (DecodeError, ValueError, RuntimeError):
        return False
    return bool(node.name and node.op)


def read_frozen_graph(path: Path, shown: str) -> ModelFile:
    """The constants of a frozen GraphDef as variables, with the BN layers its structure shows."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    try:
        graph = pb.GraphDef.FromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise FormatError(f"{shown}: not a TensorFlow GraphDef (unparsable protobuf)") from None
    nodes: dict[str, Any] = {}
    for node in graph.node:
        if not node.name or not node.op:
            raise FormatError(f"{shown}: not a TensorFlow GraphDef (a node without a name or op)")
        nodes[node.name] = node
    if not nodes:
        raise FormatError(f"{shown}: a GraphDef without nodes")
    constants = {name: node for name, node in nodes.items() if _is_float_const(node)}

    def read(name: str) -> np.ndarray:
        return tensor_value(constants[name].attr["value"].tensor, f"{shown}: constant {name}")

    variables = tuple(_constant(node, shown, read) for node in constants.values())
    entry = Entry("the frozen graph", GraphIndex.of(graph))
    verdict = judge(entry)
    structure = tuple(judged_layers(verdict, entry.label, fix=FIX))
    notes = tuple(notes_of(entry, verdict))
    return ModelFile(
        shown, FORMAT, variables, main_file=str(path), structure=structure, notes=notes, framework=Framework.TF1
    )


def _is_float_const(node: Any) -> bool:
    return node.op == "Const" and "value" in node.attr and node.attr["value"].tensor.dtype in DTYPES


def _constant(node: Any, shown: str, read: Callable[[str], np.ndarray]) -> Variable:
    tensor = node.attr["value"].tensor
    shape = _shape(tensor, f"{shown}: constant {node.name}")
    dtype = np.dtype(DTYPES[tensor.dtype][0])
    return Variable(node.name, node.name, dtype.name, shape, read)


def _shape(tensor: Any, where: str) -> tuple[int, ...]:
    dims = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    if tensor.tensor_shape.unknown_rank or any(d < 0 for d in dims):
        raise FormatError(f"{where}: constant of unknown shape")
    if int(np.prod(dims, dtype=np.float64)) > MAX_ELEMENTS:
        raise FormatError(f"{where}: implausible shape {list(dims)}")
    return dims


def tensor_value(tensor: Any, where: str) -> np.ndarray:
    """A TensorProto's value as TensorFlow's ``make_ndarray`` gives it: ``tensor_content`` bytes,
    or the typed ``*_val`` list (one value broadcast, a short list padded with its last value)."""
    if tensor.dtype not in DTYPES:
        raise FormatError(f"{where}: unsupported dtype {tensor.dtype}")
    code, field = DTYPES[tensor.dtype]
    dtype = np.dtype(code)
    shape = _shape(tensor, where)
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        if len(tensor.tensor_content) != count * dtype.itemsize:
            raise FormatError(
                f"{where}: {len(tensor.tensor_content)} bytes of content for shape {list(shape)} of {dtype.name}"
            )
        return np.frombuffer(tensor.tensor_content, dtype).reshape(shape).copy()
    raw = getattr(tensor, field)
    if field == "half_val":  # float16 bit patterns stored as int32
        values = np.asarray(raw, dtype=np.int64).astype(np.uint16).view(np.float16)
    else:
        values = np.asarray(raw, dtype=dtype)
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size > count:
        raise FormatError(f"{where}: {values.size} values for shape {list(shape)}")
    if values.size < count:
        values = np.pad(values, (0, count - values.size), mode="edge")
    return values.astype(dtype).reshape(shape)
