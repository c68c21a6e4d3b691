"""A SavedModel's ``saved_model.pb``: the training graph of a TF1 SavedModel, and what each signature runs.

Parsed with the project's protobuf subset, never with TensorFlow, and only when a SavedModel is
inspected with its graph. A meta graph tagged ``train`` is digested for the graph rules as a
``.meta`` file is (:mod:`.metagraph`). Every signature of the other meta graphs is an inference
entry point (:mod:`.exported`):

- TF2 (``tf.saved_model.save``, Keras 3 ``model.export``, tf_keras ``model.save``): the object
  graph's ``signatures`` name the concrete function of each; its ``bound_inputs`` say which
  objects (variables) the function's last arguments capture, and those objects' names are the
  checkpoint's names of the variables.
- TF1 (``SavedModelBuilder``): the signature's output tensors in the meta graph's own graph.

The BN layers the signatures normalise become the model's structure (reconciled with the
names as for ``.meta`` files); those normalised with batch statistics carry, in
``batch_statistics``, the signature, how it was written and the fix for that writer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..facts import BatchStatistics, GraphLayer, ModelFile
from .exported import Budget, Entry, judge, judged_layers, notes_of
from .graph import GraphIndex
from .keras_metadata import METADATA
from .metagraph import NO_GRAPH, digest, parse_graph_file
from .proto import tf_subset_pb2 as pb
from .tfcheckpoint import VALUE_SUFFIX

INIT_OP = "__saved_model_init_op"  # not a signature: the op that initialises tables
WRITERS = {  # who wrote a SavedModel -> the fix for a signature that normalises with batch statistics
    "TF1": "build the serving graph with training=False (or a tf.compat.v1.placeholder_with_default(False) switch)",
    "tf_keras": "save a model whose layers are not called with training=True (nor the learning phase set to 1), "
    "or export a tf.function calling model(x, training=False)",
    "Keras 3": "export with model.export(); a function added with add_endpoint must call the model with training=False",
    "tf.saved_model.save": "the tf.function saved as this signature must call the model with training=False",
}


def parse_saved_model(path: Path) -> Any:
    """The ``SavedModel`` proto of ``path``; exit 2 (InputError/FormatError) when unreadable."""
    saved = parse_graph_file(path, pb.SavedModel, "not a TensorFlow SavedModel (unparsable saved_model.pb)")
    if not saved.meta_graphs:
        raise FormatError(f"{path}: a SavedModel without meta graphs{NO_GRAPH}")
    return saved


def with_saved_model_graph(model: ModelFile, path: Path) -> ModelFile:
    """``model`` with what its ``saved_model.pb`` shows: the training graph, the layers the signatures
    normalise and the notes."""
    saved = parse_saved_model(path)
    budget = Budget()  # shared by every signature of the file
    graph, trained = None, ()
    notes: list[str] = []
    served: list[GraphLayer] = []
    for meta in saved.meta_graphs:
        if "train" in meta.meta_info_def.tags:
            if graph is None:
                graph = digest(meta, str(path))
                trained = graph.layers
                notes += graph.notes
            continue
        writer = _writer(meta, path.parent)
        if meta.signature_def.keys() - {INIT_OP} and not meta.graph_def.node and not meta.graph_def.library.function:
            notes.append(
                f"{path}: the meta graph tagged {', '.join(meta.meta_info_def.tags)} holds no graph: "
                "its signatures are not judged"
            )
            continue
        for entry in _entries(meta, model):
            verdict = judge(entry, budget)
            notes += notes_of(entry, verdict)
            served += judged_layers(verdict, entry.label, writer, WRITERS[writer])
    structure = _merged(trained, served)
    if graph is None and not structure and not notes:
        return model
    return replace(model, graph=graph, structure=structure, notes=(*model.notes, *notes))


def _writer(meta: Any, directory: Path) -> str:
    if not meta.object_graph_def.nodes:
        return "TF1"
    if (directory / METADATA).is_file():
        return "tf_keras"
    root = meta.object_graph_def.nodes[0]
    if any(child.local_name == "_all_variables" for child in root.children):
        return "Keras 3"  # keras.export.ExportArchive tracks the model's variables under this name
    return "tf.saved_model.save"


def _entries(meta: Any, model: ModelFile) -> Iterator[Entry]:
    """An entry point per signature (the init op aside)."""
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    functions = _signature_functions(meta)
    top: GraphIndex | None = None
    names = _object_names(meta, model)
    for key in sorted(meta.signature_def):
        if key == INIT_OP:
            continue
        label = f"signature '{key}'"
        name = functions.get(key)
        if name in library:
            captures = list(meta.object_graph_def.concrete_functions[name].bound_inputs)
            yield _function_entry(label, library, name, [names.get(i, f"<object {i}>") for i in captures])
            continue
        top = top or GraphIndex(meta.graph_def.node, library)
        outputs = tuple(info.name for _, info in sorted(meta.signature_def[key].outputs.items()))
        yield Entry(label, top, outputs)


def _signature_functions(meta: Any) -> dict[str, str]:
    """Signature key -> the concrete function it calls, from a TF2 object graph's ``signatures`` node."""
    nodes = meta.object_graph_def.nodes
    if not nodes:
        return {}
    signatures = next((c.node_id for c in nodes[0].children if c.local_name == "signatures"), None)
    if signatures is None or not 0 <= signatures < len(nodes):
        return {}
    found = {}
    for child in nodes[signatures].children:
        if 0 <= child.node_id < len(nodes):
            node = nodes[child.node_id]
            kind = node.WhichOneof("kind")
            if kind == "bare_concrete_function":
                found[child.local_name] = node.bare_concrete_function.concrete_function_name
            elif kind == "function" and node.function.concrete_functions:
                found[child.local_name] = node.function.concrete_functions[0]
    return found


def _object_names(meta: Any, model: ModelFile) -> dict[int, str]:
    """Object-graph node id -> the name of the checkpoint variable it is: the variable whose checkpoint key is
    the node's path (as TensorFlow builds keys: the first path from the root, breadth first), else the one
    variable of its name."""
    nodes = meta.object_graph_def.nodes
    by_key = {variable.key: variable.name for variable in model.variables}
    counts = Counter(variable.name for variable in model.variables)
    names = {}
    for node_id, path in _paths(nodes).items():
        if nodes[node_id].WhichOneof("kind") != "variable":
            continue
        name = by_key.get(f"{path}/{VALUE_SUFFIX.lstrip('/')}")
        if name is None:
            named = nodes[node_id].variable.name.removesuffix(":0")
            name = named if counts[named] == 1 else None
        if name is not None:
            names[node_id] = name
    return names


def _paths(nodes: Any) -> dict[int, str]:
    """Node id -> the first path of escaped child names from the root, breadth first (a checkpoint key's path)."""
    paths = {0: ""} if nodes else {}
    queue = [0] if nodes else []
    for node_id in queue:
        for child in nodes[node_id].children:
            if 0 <= child.node_id < len(nodes) and child.node_id not in paths:
                escaped = child.local_name.replace(".", "..").replace("/", ".S")
                paths[child.node_id] = f"{paths[node_id]}/{escaped}" if paths[node_id] else escaped
                queue.append(child.node_id)
    return paths


def _function_entry(label: str, library: dict[str, Any], name: str, captured: list[str]) -> Entry:
    """The entry point of a concrete function whose last arguments capture the ``captured`` variables."""
    function = library[name]
    args = [arg.name for arg in function.signature.input_arg]
    bound = args[len(args) - len(captured) :] if captured else []
    unique = Counter(captured)
    holders = {}
    for arg, variable in zip(bound, captured, strict=False):
        holders[arg] = variable if unique[variable] == 1 and not variable.startswith("<") else f"<capture {arg}>"
    outer = GraphIndex(pb.NodeDef(name=n, op="VarHandleOp") for n in dict.fromkeys(holders.values()))
    body = GraphIndex(function.node_def, library, outer, holders)
    return Entry(label, body)


def _merged(trained: tuple[GraphLayer, ...], served: list[GraphLayer]) -> tuple[GraphLayer, ...]:
    """The training graph's layers (else the signatures'), each with every signature's verdict on it."""
    verdicts: dict[frozenset[tuple[str, str]], list[BatchStatistics]] = {}
    for layer in served:
        found = verdicts.setdefault(_identity(layer), [])
        found += [b for b in layer.batch_statistics if b not in found]
    layers: list[GraphLayer] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for layer in (*trained, *served):
        key = _identity(layer)
        if key not in seen:
            seen.add(key)
            found = verdicts.get(key, [])
            layers.append(replace(layer, batch_statistics=tuple(found)) if found else layer)
    return tuple(layers)


def _identity(layer: GraphLayer) -> frozenset[tuple[str, str]]:
    """What makes two readings of a layer one: its moving statistics, else (none kept) all its variables."""
    statistics = frozenset((r, n) for r, n in layer.members.items() if r in ("moving_mean", "moving_variance"))
    return statistics or frozenset(layer.members.items())
