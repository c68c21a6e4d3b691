"""TensorFlow's own answer for an exported model: does each signature normalise with the batch's statistics?

A signature is run on a fixed batch of 8 images and on the batch's first image alone; it depends on the batch
when the first row of the two outputs differs (BatchNormalization in training mode). TensorFlow is imported
when a function is called, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BATCH = 8
SEED = 11


def batch_dependent(path: str | Path) -> dict[str, bool | None]:
    """Per signature of a SavedModel directory, or ``{"graph": ...}`` for a frozen GraphDef file.

    A signature with inputs other than the one image input and scalar bool switches (fed False, as served) is
    left out (``train``). A frozen graph that needs a
    feed without a default (a bare ``training`` placeholder) gives ``{"graph": None}``: the caller chooses.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    path = Path(path)
    return _signatures(path) if path.is_dir() else {"graph": _frozen_graph(path)}


def _images(shape) -> np.ndarray:
    return np.random.default_rng(SEED).normal(0.5, 2.0, (BATCH, *shape)).astype(np.float32)


def _differs(full: list[np.ndarray], single: list[np.ndarray]) -> bool:
    return any(not np.allclose(a[:1], b, rtol=1e-4, atol=1e-5) for a, b in zip(full, single, strict=True))


def _image_shape(shape) -> tuple[int, ...] | None:
    """The shape of one image for an input of rank 4 with only the batch dimension unknown."""
    dims = list(shape)
    return tuple(dims[1:]) if len(dims) == 4 and None not in dims[1:] else None


def _signatures(path: Path) -> dict[str, bool | None]:
    import tensorflow as tf

    answers: dict[str, bool | None] = {}
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    tags = ["serve"] if len(saved.meta_graphs) > 1 else None  # the serving graph, beside a training one
    for key, function in tf.saved_model.load(str(path), tags=tags).signatures.items():
        args, kwargs = function.structured_input_signature
        switches = {k: False for k, spec in kwargs.items() if spec.dtype == tf.bool and spec.shape.rank == 0}
        images = {k: spec for k, spec in kwargs.items() if k not in switches}
        if args or len(images) != 1:
            continue
        ((name, spec),) = images.items()
        shape = _image_shape(spec.shape.as_list()) if spec.dtype.is_floating else None
        if shape is None:
            continue
        batch = _images(shape)
        fed = {k: tf.constant(v) for k, v in switches.items()}  # a bool switch is served False
        outputs = [function(**{name: tf.constant(b)}, **fed) for b in (batch, batch[:1])]
        keys = sorted(outputs[0])
        answers[key] = _differs(*([out[k].numpy() for k in keys] for out in outputs))
    return answers


def _frozen_graph(path: Path) -> bool | None:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
    if len(placeholders) != 1:
        return None
    consumed = {name.lstrip("^").split(":")[0] for node in graph_def.node for name in node.input}
    sinks = [n.name for n in graph_def.node if n.name not in consumed and n.op not in ("Const", "NoOp", "Placeholder")]
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    feed = graph.get_tensor_by_name(f"{placeholders[0].name}:0")
    shape = _image_shape(feed.shape.as_list()) if feed.dtype.is_floating else None
    if shape is None:
        return None
    images = _images(shape)
    fetches = [graph.get_tensor_by_name(f"{name}:0") for name in sinks]
    with tf.compat.v1.Session(graph=graph) as session:
        full, single = (session.run(fetches, {feed: batch}) for batch in (images, images[:1]))
    return _differs(full, single)
