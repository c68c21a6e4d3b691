"""Layer hints of a tf.keras SavedModel from its ``keras_metadata.pb``.

The file is a ``SavedMetadata`` proto: ``repeated SavedObject nodes = 1`` whose field 5
is a JSON string with the layer's ``class_name``, ``name``, ``trainable`` and
``config``. Only that string is needed, so the few wire-format fields are decoded here
rather than through a schema; the JSON is read as data, never deserialised into layers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import FormatError
from ..model import LayerHints
from .keras_common import OTHER_NORM, parse_config

METADATA = "keras_metadata.pb"


def saved_model_hints(directory: Path) -> dict[str, LayerHints]:
    """momentum / epsilon / frozen of every BN layer named in ``keras_metadata.pb`` (empty if none)."""
    path = directory / METADATA
    if not path.is_file():
        return {}
    try:
        data = path.read_bytes()
        nodes = [value for number, value in _fields(data) if number == 1 and isinstance(value, bytes)]
        texts = [value for node in nodes for number, value in _fields(node) if number == 5 and isinstance(value, bytes)]
    except (OSError, IndexError, ValueError) as exc:
        raise FormatError(f"{path}: unreadable keras_metadata.pb ({exc})") from None
    hints: dict[str, LayerHints] = {}
    for text in texts:
        try:
            metadata = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            continue  # a node whose metadata is not JSON tells nothing about BN
        if not isinstance(metadata, dict):
            continue
        root = parse_config(metadata)
        for layer in root.walk() if root else ():
            if layer.name and (layer.is_bn or OTHER_NORM.search(layer.class_name)):
                hints.setdefault(layer.name, layer.hints())
    return hints


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected wire type {wire}")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
