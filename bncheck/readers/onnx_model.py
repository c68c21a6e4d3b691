"""ONNX models (``.onnx``): the ``BatchNormalization`` nodes and their initializers.

Needs the optional ``onnx`` package (``pip install 'bncheck[onnx]'``), imported only here and
only when an ``.onnx`` file is read. The model is loaded as data
(``load_external_data=False``) and never run. Inputs 1-4 of a node are scale (gamma), B
(beta), input_mean and input_var (moving statistics), taken from initializers or
``Constant`` nodes; ``epsilon`` and ``momentum`` are the node's attributes. A node exported
in training mode (``training_mode=1``, or running-statistics outputs) is marked for BN013.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, InputError
from ..facts import Framework, LayerHints, ModelFile, Variable
from .numbers import attribute_number

FORMAT = "ONNX model"
EXTRA = "reading ONNX models needs the onnx package: pip install 'bncheck[onnx]'"
ROLES = ("gamma", "beta", "moving_mean", "moving_variance")  # inputs 1..4 of BatchNormalization
DEFAULT_EPSILON = 1e-5
DEFAULT_MOMENTUM = 0.9


def _onnx() -> Any:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    return onnx, numpy_helper


def read_onnx(path: Path, shown: str) -> ModelFile:
    """The BN layers of an ONNX model as variables grouped by node, with their hints."""
    modules = _onnx()
    if modules is None:
        raise InputError(f"{shown}: {EXTRA}")
    onnx, numpy_helper = modules
    source = str(path) if isinstance(path, Path) else io.BytesIO(path.read_bytes())  # a protobuf: all of it
    try:
        model = onnx.load(source, load_external_data=False)
        graph = model.graph
        tensors = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
                if value is not None:
                    tensors.setdefault(node.output[0], value)
        bn_nodes = [
            node for node in graph.node if node.op_type == "BatchNormalization" and node.domain in ("", "ai.onnx")
        ]
    except OSError as exc:
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # onnx raises DecodeError, ValueError, RuntimeError and its own errors for bad bytes
        raise FormatError(f"{shown}: not a readable ONNX model ({type(exc).__name__})") from None
    try:
        return _model_file(path, shown, bn_nodes, tensors, numpy_helper)
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. a name that is not valid UTF-8 comes back as bytes
        raise FormatError(f"{shown}: malformed ONNX model ({exc})") from None


def _model_file(path: Path, shown: str, bn_nodes: list[Any], tensors: dict[str, Any], numpy_helper: Any) -> ModelFile:
    variables: list[Variable] = []
    hints: dict[str, LayerHints] = {}
    notes: list[str] = []

    def read(key: str) -> np.ndarray:
        return _load(tensors[key], key, shown, numpy_helper)

    taken: dict[str, int] = {}  # names given, and for each the next suffix to try
    for number, node in enumerate(bn_nodes):
        name = _layer_name(node, number, taken)
        attrs = {a.name: a for a in node.attribute}
        epsilon = attrs["epsilon"].f if "epsilon" in attrs else DEFAULT_EPSILON
        momentum = attrs["momentum"].f if "momentum" in attrs else DEFAULT_MOMENTUM
        training = (attrs["training_mode"].i if "training_mode" in attrs else 0) != 0 or len(node.output) > 1
        hints[name] = LayerHints(attribute_number(momentum), attribute_number(epsilon), training_mode=training)
        for role, ref in zip(ROLES, list(node.input)[1:5], strict=False):
            tensor = tensors.get(ref)
            if tensor is None:
                if ref:
                    notes.append(f"{name}: {role} ({ref}) is computed in the graph, not stored: not checked")
                continue
            variables.append(_variable(tensor, ref, f"{name}/{role}", shown, read))
    return ModelFile(
        shown, FORMAT, tuple(variables), hints=hints, notes=tuple(notes), main_file=str(path), framework=Framework.ONNX
    )


def _layer_name(node: Any, number: int, taken: dict[str, int]) -> str:
    """The node's name ('/bn/BatchNormalization' -> 'bn'), else the common prefix of its inputs, else a number;
    made unique with a suffix (``taken`` says where to start: thousands of nodes of one name cost no more)."""
    name = node.name.strip("/")
    if name.endswith("BatchNormalization") and "/" in name:
        name = name.rpartition("/")[0]
    if not name:
        stems = {ref.rpartition(".")[0] for ref in list(node.input)[1:5] if "." in ref}
        name = stems.pop() if len(stems) == 1 else f"BatchNormalization_{number}"
    candidate, n = name, taken.get(name, 1)
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken[name], taken[candidate] = n, taken.get(candidate, 1)
    return candidate


def _variable(tensor: Any, key: str, name: str, shown: str, read: Callable[[str], np.ndarray]) -> Variable:
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims):
        raise FormatError(f"{shown}: tensor {key} has a negative dimension")
    try:
        import onnx

        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).name
    except Exception:  # an unknown or non-numeric element type
        raise FormatError(f"{shown}: tensor {key} has an unsupported element type {tensor.data_type}") from None
    return Variable(key, name, dtype, dims, read)


def _load(tensor: Any, key: str, shown: str, numpy_helper: Any) -> np.ndarray:
    dims = tuple(int(d) for d in tensor.dims)
    if tensor.data_location == 1:  # EXTERNAL: the values live in another file, which bncheck does not open
        raise FormatError(f"{shown}: tensor {key} is stored in an external data file; bncheck reads embedded values")
    try:
        value = np.asarray(numpy_helper.to_array(tensor))
    except Exception as exc:
        raise FormatError(f"{shown}: tensor {key} is unreadable ({type(exc).__name__})") from None
    if value.shape != dims:
        raise FormatError(f"{shown}: tensor {key} holds shape {list(value.shape)}, declares {list(dims)}")
    return value
