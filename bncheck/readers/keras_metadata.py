"""Layer hints of a tf.keras SavedModel from its ``keras_metadata.pb``.

The file is a ``SavedMetadata`` proto whose nodes carry a JSON string with each
layer's ``class_name``, ``name``, ``trainable`` and ``config``; the JSON is read as
data, never deserialised into layers.
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.message import DecodeError

from ..errors import FormatError
from ..facts import LayerHints
from .keras_common import OTHER_NORM, parse_config
from .lfs import refuse_pointer

METADATA = "keras_metadata.pb"


def saved_model_hints(directory: Path) -> dict[str, LayerHints]:
    """momentum / epsilon / frozen of every BN layer named in ``keras_metadata.pb`` (empty if none)."""
    from .proto import tf_subset_pb2 as pb

    path = directory / METADATA
    if not path.is_file():
        return {}
    try:
        data = path.read_bytes()
        refuse_pointer(data, str(path))
        saved = pb.SavedMetadata.FromString(data)
    except (OSError, DecodeError) as exc:
        raise FormatError(f"{path}: unreadable keras_metadata.pb ({exc})") from None
    hints: dict[str, LayerHints] = {}
    for node in saved.nodes:
        try:
            metadata = json.loads(node.metadata)
        except ValueError:
            continue  # a node whose metadata is not JSON tells nothing about BN
        if not isinstance(metadata, dict):
            continue
        root = parse_config(metadata)
        for layer in root.walk() if root else ():
            if layer.name and (layer.is_bn or OTHER_NORM.search(layer.class_name)):
                hints.setdefault(layer.name, layer.hints())
    return hints
