"""Keras 3 ``.keras`` archives and ``.weights.h5`` files as a :class:`ModelFile`.

A ``.keras`` file is a zip of ``config.json`` + ``model.weights.h5`` (+ ``metadata.json``);
the weights are read from the zip member in memory, never extracted. In the weights file
every object with state has a group whose ``vars`` subgroup holds its variables as
datasets ``0..n`` in creation order, trainable first: for BatchNormalization gamma (if
``scale``), beta (if ``center``), moving_mean, moving_variance, then the renorm extras.
Layers of a Functional or Sequential model sit under ``layers/<snake_class>(_N)``
(Keras 2.14: ``_layer_checkpoint_dependencies/<layer name>``), attributes of subclassed
models under their attribute name; recent writers store the layer name in
``vars.attrs["name"]``. Roles, names, momentum, epsilon and ``trainable`` come from
``config.json``; without a config, 4 variables map unambiguously and 2 or 3 are reported
as ambiguous (only the moving statistics are then checked).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from ..errors import FormatError
from ..facts import Framework, LayerHints, ModelFile, Variable
from ..naming import BN_NAME
from .keras_common import (
    H5_ERRORS,
    RENORM_EXTRAS,
    LayerConfig,
    datasets,
    decode,
    h5_reader,
    h5_variable,
    load_json,
    open_h5,
    parse_config,
    snake_case,
)
from .steps import StepCounter, find_step
from .zipmembers import ZIP_ERRORS, member_bytes, stored_member, zip_archive

CONTAINERS = ("layers", "_layer_checkpoint_dependencies")
NOT_LAYERS = re.compile(r"^(optimizer|.*metric.*|loss_tracker|_?tracker.*)$")
_BN_GROUP = re.compile(r"^batch_normalization(_\d+)?$")
WEIGHTS_MEMBER = "model.weights.h5"


def read_keras_archive(path: str, shown: str) -> ModelFile:
    """A ``.keras`` zip: config.json for names and roles, model.weights.h5 read in memory."""
    try:
        with zip_archive(path) as archive:
            members = set(archive.namelist())
            if WEIGHTS_MEMBER not in members:
                raise FormatError(f"{shown}: a zip without {WEIGHTS_MEMBER}; not a Keras .keras archive")
            config_text = member_bytes(archive, "config.json", shown) if "config.json" in members else None
            metadata = member_bytes(archive, "metadata.json", shown) if "metadata.json" in members else None
            info = archive.getinfo(WEIGHTS_MEMBER)
            weights = stored_member(path, info, shown) or io.BytesIO(member_bytes(archive, WEIGHTS_MEMBER, shown))
    except ZIP_ERRORS as exc:
        raise FormatError(f"{shown}: not a readable .keras (zip) archive ({exc})") from None
    config = parse_config(load_json(config_text, shown, "config.json")) if config_text else None
    version = None
    if metadata:
        meta = load_json(metadata, shown, "metadata.json")
        version = meta.get("keras_version") if isinstance(meta, dict) else None
    h5 = open_h5(weights, f"{shown} ({WEIGHTS_MEMBER})")
    fmt = f"Keras .keras archive (Keras {version})" if version else "Keras .keras archive"
    read = read_weights(h5, shown, config, fmt)
    if config is None:
        why = "has no config.json" if config_text is None else "has a config.json that is not a layer config"
        read = replace(
            read, notes=(*read.notes, f"the archive {why}: layer roles were inferred from the variable count")
        )
    return read


def is_keras3_weights(h5: Any) -> bool:
    """The Keras 3 layout: the model's own ``vars`` group of numbered datasets at the root (often empty), or a layer
    container (``layers``, ``_layer_checkpoint_dependencies``) whose layers hold ``vars`` groups."""
    own = h5.get("vars")
    if _is_group(own) and all(key.isdigit() for key in own):
        return True
    containers = (h5.get(name) for name in CONTAINERS)
    return any(
        _is_group(layer) and _is_group(layer.get("vars"))
        for container in containers
        if _is_group(container)
        for layer in container.values()
    )


def read_weights(h5: Any, shown: str, config: LayerConfig | None, fmt: str = "Keras 3 .weights.h5") -> ModelFile:
    """The layers of a Keras 3 weights file; ``config`` (from a ``.keras`` archive) names the roles."""
    walker = _Walker(shown, h5_reader(h5, shown))
    try:
        walker.saveable(h5, config, Path(shown).name, (), top=True)
    except H5_ERRORS as exc:
        raise FormatError(f"{shown}: unreadable Keras weights file ({exc})") from None
    step, errors = find_step(_iteration_count(h5, shown))
    return ModelFile(
        shown,
        fmt,
        tuple(walker.variables),
        step,
        walker.hints,
        errors,
        tuple(walker.summary()),
        framework=Framework.KERAS,
        close=h5.close,
    )


class _Walker:
    """Walks the weights file and the config tree side by side."""

    def __init__(self, shown: str, read: Callable[[str], np.ndarray]) -> None:
        self.shown = shown
        self.read = read
        self.variables: list[Variable] = []
        self.hints: dict[str, Any] = {}
        self.used: set[str] = set()
        self.ambiguous: dict[int, list[str]] = {2: [], 3: []}
        self.mismatched: list[str] = []

    def saveable(self, group: Any, config: LayerConfig | None, key: str, trail: tuple[str, ...], top: bool = False):
        vars_group = group.get("vars") if _is_group(group.get("vars")) else None
        attr = vars_group.attrs.get("name") if vars_group is not None else None
        name = decode(attr) if attr is not None else (config.name if config and config.name else key)
        if not top:
            name = self._unique(name, trail)
            if vars_group is not None and len(vars_group):
                self.layer(vars_group, name, key, config)
            trail = (*trail, name)
        for child_key, child in group.items():
            if child_key == "vars" or not _is_group(child) or (top and NOT_LAYERS.match(child_key)):
                continue
            if child_key in CONTAINERS:
                self.container(child, config, child_key, trail)
            elif _is_group(child.get("vars")):
                self.saveable(child, None, child_key, trail)  # an attribute of a subclassed model
            else:
                self.container(child, None, child_key, trail)  # a list attribute

    def container(self, group: Any, config: LayerConfig | None, kind: str, trail: tuple[str, ...]) -> None:
        children = config.children if config else []
        by_name = {c.name: c for c in children}
        by_path, counts = {}, Counter()
        for child in children:  # Keras 3: <snake_class>, <snake_class>_1, ... in layer order
            base = snake_case(child.class_name)
            by_path[base if not counts[base] else f"{base}_{counts[base]}"] = child
            counts[base] += 1
        for key, child in group.items():
            if not _is_group(child):
                continue
            vars_group = child.get("vars")
            attr = vars_group.attrs.get("name") if _is_group(vars_group) else None
            found = by_name.get(decode(attr)) if attr is not None else None
            if found is None:
                found = by_name.get(key) if kind == "_layer_checkpoint_dependencies" else by_path.get(key)
            if _is_group(vars_group):
                self.saveable(child, found, key, trail)
            else:
                self.container(child, None, key, trail)

    def layer(self, vars_group: Any, name: str, key: str, config: LayerConfig | None) -> None:
        if config is not None:
            self.hints[name] = config.hints()
            if not config.is_bn:
                return  # the config says what it is: its variables are no BN variables (and h5py calls are slow)
        values = datasets(vars_group)
        roles: list[str | None] = []
        if config is not None:  # a BatchNormalization
            roles = list(config.bn_roles())
            if len(roles) != len(values):
                self.mismatched.append(f"{name} ({len(values)} variables, config says {len(roles)})")
                roles = []
        elif (_BN_GROUP.match(key) or BN_NAME.search(name)) and _same_vectors(values):
            roles = _roles_without_config(len(values))
            if len(values) in self.ambiguous:
                self.ambiguous[len(values)].append(name)
            if len(values) == 3:  # vars/0 is gamma or beta: the file cannot say which
                self.hints[name] = LayerHints(unmapped=("gamma", "beta"))
        for i, dataset in enumerate(values):
            role = roles[i] if i < len(roles) else None
            self.variables.append(h5_variable(dataset, f"{name}/{role}" if role else f"{name}/vars/{i}", self.read))

    def _unique(self, name: str, trail: tuple[str, ...]) -> str:
        if name in self.used and trail:
            name = "/".join((*trail, name))
        self.used.add(name)
        return name

    def summary(self) -> list[str]:
        notes = []
        for count, what in ((3, "vars/0 is gamma (center=False) or beta (scale=False)"), (2, "assumed")):
            names = self.ambiguous[count]
            if not names:
                continue
            listed = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            if count == 3:
                notes.append(
                    f"{len(names)} BN layer(s) hold 3 variables and the file has no config ({listed}): {what}; "
                    "the mapping is ambiguous, so only moving_mean/moving_variance (vars/1, vars/2) were checked"
                )
            else:
                notes.append(
                    f"{len(names)} BN layer(s) hold 2 variables and the file has no config ({listed}): taken as "
                    "moving_mean/moving_variance of a layer with center=False and scale=False (ambiguous without "
                    "config.json)"
                )
        if self.mismatched:
            notes.append(
                "variable count differs from the layer config, roles unknown, not checked: "
                + ", ".join(self.mismatched)
            )
        return notes


def _is_group(item: Any) -> bool:
    import h5py

    return isinstance(item, h5py.Group)


def _same_vectors(values: list[Any]) -> bool:
    return bool(values) and all(len(v.shape) == 1 and v.shape == values[0].shape for v in values)


def _roles_without_config(count: int) -> list[str | None]:
    """Roles of a BN layer's variables when only their number is known."""
    if count == 4:
        return ["gamma", "beta", "moving_mean", "moving_variance"]
    if count == 7:
        return ["gamma", "beta", "moving_mean", "moving_variance", *RENORM_EXTRAS]
    if count == 3:
        return [None, "moving_mean", "moving_variance"]
    if count == 2:
        return ["moving_mean", "moving_variance"]
    return []


def _iteration_count(h5: Any, shown: str) -> Iterator[StepCounter]:
    """The optimizer's iteration count: ``optimizer/vars/0`` (when it is an integer scalar)."""
    unreadable = f"{shown}: the optimizer's iteration count is unreadable"
    try:
        dataset = h5.get("optimizer/vars/0")
        if dataset is None:
            return
        shape, integer = dataset.shape, dataset.dtype.kind in "iu"
    except H5_ERRORS:
        raise FormatError(unreadable) from None

    def read() -> int:
        try:
            return int(dataset[()])
        except H5_ERRORS:
            raise FormatError(unreadable) from None

    yield StepCounter("iterations", "optimizer iterations", shape, integer, read)
