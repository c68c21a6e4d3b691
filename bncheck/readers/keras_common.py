"""What the Keras readers share: opening HDF5 safely, lazy datasets, and layer configs read as JSON.

Configs are never deserialised: a config is a JSON tree of ``{"class_name", "config"}``
objects, and only names, ``trainable``, ``momentum``, ``epsilon``, ``center``,
``scale`` and ``renorm`` are taken from it. h5py is imported only when a Keras file is
read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ..errors import FormatError
from ..facts import LayerHints, Variable

BN_CLASSES = re.compile(r"^(Sync)?BatchNormalization(V[12])?$")
OTHER_NORM = re.compile(r"Normalization$")  # LayerNormalization, GroupNormalization, ...: not BN
RENORM_EXTRAS = ("moving_stddev", "renorm_mean", "renorm_stddev")
BN_CONFIG_KEYS = ("momentum", "moving_mean_initializer", "moving_variance_initializer")  # BatchNormalization's
# What h5py raises on damaged files: HDF5 errors surface as OSError, RuntimeError, KeyError, ...
H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError)


def open_h5(source: str | IO[bytes], shown: str) -> Any:
    """An open ``h5py.File`` on a path or a file-like object (closed when collected); a FormatError if it is not
    HDF5."""
    import h5py

    try:
        return h5py.File(source, "r")
    except H5_ERRORS as exc:
        raise FormatError(f"{shown}: not a readable HDF5 file ({exc})") from None


def h5_reader(h5: Any, shown: str) -> Callable[[str], np.ndarray]:
    """The reader of the datasets of open file ``h5``, by path: what its Variables load through."""

    def read(path: str) -> np.ndarray:
        try:
            return np.asarray(h5[path][()])
        except H5_ERRORS as exc:
            raise FormatError(f"{shown}: cannot read dataset {path} ({exc})") from None

    return read


def h5_variable(dataset: Any, name: str, read: Callable[[str], np.ndarray]) -> Variable:
    """A Variable whose value ``read`` loads from ``dataset`` only when asked for."""
    return Variable(dataset.name, name, str(dataset.dtype), tuple(int(d) for d in dataset.shape), read)


def datasets(group: Any) -> list[Any]:
    """The datasets directly in ``group``, in numeric order when their names are numbers (Keras 3 ``vars``)."""
    import h5py

    items = [(key, item) for key, item in group.items() if isinstance(item, h5py.Dataset)]
    items.sort(key=lambda kv: (0, int(kv[0])) if kv[0].isdigit() else (1, 0))
    return [item for _, item in items]


def decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def string_list(attrs: Any, name: str) -> list[str] | None:
    """An HDF5 list-of-strings attribute, joined from ``name0..k`` chunks when Keras split it."""
    if name in attrs:
        chunks = [attrs[name]]
    elif f"{name}0" in attrs:
        chunks, i = [], 0
        while f"{name}{i}" in attrs:
            chunks.append(attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    return [decode(v) for chunk in chunks for v in np.atleast_1d(chunk).tolist()]


def load_json(text: str | bytes, shown: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{shown}: {what} is not valid JSON ({exc})") from None


@dataclass
class LayerConfig:
    """One layer (or nested model) of a Keras config."""

    class_name: str
    name: str
    config: dict[str, Any]
    trainable: bool  # False: trainable=False here or in an enclosing model
    children: list[LayerConfig] = field(default_factory=list)

    @property
    def is_bn(self) -> bool:
        """A BatchNormalization, or a subclass of it (a custom layer: its config has BN's own keys)."""
        return bool(BN_CLASSES.match(self.class_name)) or all(key in self.config for key in BN_CONFIG_KEYS)

    def bn_roles(self) -> list[str]:
        """The variables a BN layer creates, in creation order (gamma, beta, stats, renorm extras)."""
        roles = ["gamma"] if self.config.get("scale", True) else []
        roles += ["beta"] if self.config.get("center", True) else []
        roles += ["moving_mean", "moving_variance"]
        return roles + (list(RENORM_EXTRAS) if self.config.get("renorm") else [])

    def hints(self) -> LayerHints:
        if not self.is_bn:
            return LayerHints(is_bn=False)
        return LayerHints(_number(self.config.get("momentum")), _number(self.config.get("epsilon")), self.trainable)

    def walk(self) -> Iterator[LayerConfig]:
        yield self
        for child in self.children:
            yield from child.walk()


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def parse_config(tree: Any, trainable: bool = True) -> LayerConfig | None:
    """The layer tree of a Keras model config (``config.json`` or an HDF5 ``model_config``)."""
    if not isinstance(tree, dict) or not isinstance(tree.get("config"), dict):
        return None
    config = tree["config"]
    name = config.get("name", tree.get("name"))
    trainable = trainable and config.get("trainable") is not False
    node = LayerConfig(str(tree.get("class_name", "")), str(name) if name is not None else "", config, trainable)
    layers = config.get("layers")
    if isinstance(layers, list):
        node.children = [child for item in layers if (child := parse_config(item, trainable)) is not None]
    elif isinstance(config.get("layer"), dict):  # wrappers (TimeDistributed, ...)
        child = parse_config(config["layer"], trainable)
        node.children = [child] if child else []
    return node


def snake_case(name: str) -> str:
    """Keras' ``to_snake_case``: how Keras 3 names a layer's group inside a ``layers`` list."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
