"""TensorFlow checkpoints (name-based TF1 and object-based TF2) as a :class:`ModelFile`.

Object-based checkpoints carry their object graph in the string tensor
``_CHECKPOINTABLE_OBJECT_GRAPH`` (a ``TrackableObjectGraph``): every variable node
names its ``checkpoint_key`` and the ``full_name`` it had in the program (e.g.
``conv2_block1_1_bn/gamma``), and optimizer slots are listed per original variable.
Layer names come from ``full_name``, not from key paths, because one layer's
variables can sit under several paths (Keras 3 saves gamma/beta under the optimizer).
The object graph is stored in the data file: when that is missing (or a Git LFS
pointer), the key paths (``layer_with_weights-1/gamma``) are all there is, and a
note says so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import FormatError
from ..facts import NOTHING, Framework, ModelFile, Variable
from ..naming import STEP_NAMES
from .bundle import Bundle
from .proto import tf_subset_pb2 as pb
from .steps import StepCounter, find_step

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
EXPORT_ALIASES = "_all_variables/"  # Keras 3 model.export stores every variable twice; these are the copies
KEY_PATHS = (
    "layer names are key paths of the checkpoint, not the names the program used: those are in its object graph, "
    "stored in the data file that was not read"
)
KERAS3_TRAINABLES = "optimizer/_trainable_variables/"  # Keras 3 under tf.train.Checkpoint: gamma/beta are saved here


def read_checkpoint(prefix: str, shown_path: str, format_name: str | None = None) -> ModelFile:
    """Read the index of ``prefix``; values stay on disk until a rule needs them."""
    bundle = Bundle(prefix)
    unread = bundle.unread_shards()
    object_based = OBJECT_GRAPH_KEY in bundle
    if object_based and not unread:
        variables = _object_variables(bundle, _object_graph(bundle))
    else:
        variables = _name_variables(bundle)
    kind = "TF2 object-based checkpoint" if object_based else "TF1 name-based checkpoint"
    errors = tuple(f"{why}; names and shapes were checked, values were not" for why in unread)
    step, step_errors = (None, ()) if unread else find_step(_counters(variables))
    return ModelFile(
        shown_path,
        format_name or kind,
        tuple(variables),
        step,
        errors=errors + step_errors,
        notes=(KEY_PATHS + _unmatched(bundle),) if object_based and unread else (),
        main_file=bundle.index_path,
        framework=Framework.TF2 if object_based else Framework.TF1,
        close=bundle.close,
    )


def _unmatched(bundle: Bundle) -> str:
    if any(name.startswith(KERAS3_TRAINABLES) for name in bundle.names()):
        return f"; gamma/beta kept under {KERAS3_TRAINABLES}N (as Keras 3 saves them) are not matched to their layer"
    return ""


def _variables(bundle: Bundle) -> Callable[..., Variable]:
    """A maker of the bundle's Variables (key, name, slots), all read by the bundle."""
    info = bundle.info

    def make(key: str, name: str, slots: Mapping[str, Variable] = NOTHING) -> Variable:
        tensor = info(key)
        return Variable(key, name, tensor.dtype, tensor.shape, bundle, slots)

    return make


def _name_variables(bundle: Bundle) -> list[Variable]:
    variable = _variables(bundle)
    return [variable(k, _unescape(k.removesuffix(VALUE_SUFFIX))) for k in bundle.names() if k != OBJECT_GRAPH_KEY]


def _object_graph(bundle: Bundle) -> Any:
    try:
        raw = bundle.read(OBJECT_GRAPH_KEY).item()
        return pb.TrackableObjectGraph.FromString(raw)
    except (DecodeError, ValueError, AttributeError, TypeError):
        raise FormatError(f"{bundle.index_path}: the checkpoint's object graph is unreadable") from None


def _object_variables(bundle: Bundle, graph: Any) -> list[Variable]:
    """Variables named by the object graph, with their optimizer slots attached."""
    key_of: dict[int, str] = {}
    full_name: dict[str, str] = {}
    for node_id, node in enumerate(graph.nodes):
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE" and attribute.checkpoint_key in bundle:
                key_of[node_id] = attribute.checkpoint_key
                full_name[attribute.checkpoint_key] = attribute.full_name.removesuffix(":0")
    slots: dict[str, list[tuple[str, str]]] = {}
    slot_keys: set[str] = set()
    for node in graph.nodes:
        for ref in node.slot_variables:
            original = key_of.get(ref.original_variable_node_id)
            slot = key_of.get(ref.slot_variable_node_id)
            if original and slot:
                slots.setdefault(original, []).append((ref.slot_name, slot))
                slot_keys.add(slot)
    # Keras 3 model.export() tracks each variable twice, as variables/N and _all_variables/N: keep one.
    outside = _names_outside(full_name)
    aliases = {k for k in full_name if k.startswith(EXPORT_ALIASES) and full_name[k] in outside}
    # A full_name shared by two variables (two models in one checkpoint) cannot name a layer.
    counts = Counter(name for key, name in full_name.items() if key not in aliases)
    variables, variable = [], _variables(bundle)
    for key in bundle.names():
        if key == OBJECT_GRAPH_KEY or key in slot_keys or key in aliases or not key.endswith(VALUE_SUFFIX):
            continue
        name = full_name.get(key, "")
        if not name or counts[name] > 1:
            name = _unescape(key.removesuffix(VALUE_SUFFIX))
        found = {}
        for slot_name, slot_key in slots.get(key, []):
            found.setdefault(slot_name, variable(slot_key, f"{name}/{slot_name}"))
        variables.append(variable(key, name, found or NOTHING))
    return variables


def _names_outside(full_name: dict[str, str]) -> set[str]:
    return {name for key, name in full_name.items() if not key.startswith(EXPORT_ALIASES)}


def _unescape(path: str) -> str:
    """Undo the object-graph key escapes ('.S' for '/', '..' for '.')."""
    if "." not in path:  # most TF1 names: skip the regex
        return path
    return re.sub(r"\.(S|\.)", lambda m: "/" if m[1] == "S" else ".", path)


def _counters(variables: list[Variable]) -> Iterator[StepCounter]:
    for variable in variables:
        if variable.name.endswith(STEP_NAMES):  # (most names: no need to split them)
            leaf = variable.name.rsplit("/", 1)[-1]
            yield StepCounter(leaf, variable.name, variable.shape, variable.dtype.startswith("int"), variable.load)
