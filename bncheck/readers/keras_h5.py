"""Keras 2 / tf.keras HDF5 files (``save_weights("x.h5")`` and full-model ``save("x.h5")``).

Weights-only files list their layers in the root attribute ``layer_names``; full-model
files hold the same under group ``model_weights`` next to the JSON ``model_config``.
Each layer group lists its datasets in ``weight_names`` (split into ``weight_names0..k``
when longer than HDF5's 64 KiB attribute limit), e.g. ``batch_normalization_1/gamma:0``;
the inner name may differ from the layer (Keras 2.0 wrote ``batch_normalization_1_1``),
so a layer's variables are named ``<layer>/<role>``. A nested model is one layer group
whose weight names carry the inner layer names (``bn/gamma:0``): those names are kept.
Keras 3's legacy HDF5 writer uses the same layout without the ``:0`` suffixes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..facts import Framework, LayerHints, ModelFile, Variable
from ..naming import STEP_NAMES
from .keras_common import (
    H5_ERRORS,
    OTHER_NORM,
    LayerConfig,
    decode,
    h5_reader,
    h5_variable,
    load_json,
    parse_config,
    string_list,
)
from .steps import StepCounter, find_step


def is_keras2_h5(h5: Any) -> bool:
    return _layer_list(h5) is not None


def _layer_list(h5: Any) -> Any:
    """The group whose ``layer_names`` attribute lists the layers: group ``model_weights`` of a full model, the root
    of a weights-only file; None in any other HDF5 file."""
    import h5py

    weights = h5.get("model_weights")
    for group in (weights, h5) if isinstance(weights, h5py.Group) else (h5,):
        if "layer_names" in group.attrs or "layer_names0" in group.attrs:
            return group
    return None


def read_keras2_h5(h5: Any, shown: str) -> ModelFile:
    """The BN layers of a Keras 2 HDF5 file, with hints from ``model_config`` when saved."""
    try:
        return _read(h5, shown)
    except H5_ERRORS as exc:
        raise FormatError(f"{shown}: unreadable Keras HDF5 file ({exc})") from None


def _read(h5: Any, shown: str) -> ModelFile:
    root = _layer_list(h5)
    config = None
    if "model_config" in h5.attrs:
        config = parse_config(load_json(decode(h5.attrs["model_config"]), shown, "model_config"))
    layers = {c.name: c for c in config.walk()} if config else {}
    version = decode(root.attrs.get("keras_version", h5.attrs.get("keras_version", ""))) or None
    kind = "weights" if root is h5 else "full model"
    fmt = f"Keras HDF5 {kind}" + (f" (Keras {version})" if version else "")
    variables: list[Variable] = []
    read = h5_reader(h5, shown)
    hints: dict[str, LayerHints] = {}
    for layer_name in string_list(root.attrs, "layer_names") or []:
        group = root.get(layer_name)
        if group is None:
            raise FormatError(f"{shown}: layer_names lists '{layer_name}' but there is no such group")
        names = string_list(group.attrs, "weight_names") or []
        nested = _is_nested(names, layers.get(layer_name))
        for weight_name in names:
            parts = weight_name.removesuffix(":0").split("/")
            name = "/".join(parts) if nested or len(parts) < 2 else f"{layer_name}/{parts[-1]}"
            variables.append(h5_variable(group[weight_name], name, read))
    for layer in layers.values():
        if layer.is_bn or OTHER_NORM.search(layer.class_name):
            hints[layer.name] = layer.hints()
    step, errors = find_step(_optimizer_counters(h5))
    return ModelFile(shown, fmt, tuple(variables), step, hints, errors, framework=Framework.KERAS, close=h5.close)


def _is_nested(weight_names: list[str], config: LayerConfig | None) -> bool:
    """Whether a layer group is a nested model: its config has layers, or its weights name several scopes."""
    if config is not None:
        return bool(config.children)
    scopes = {name.removesuffix(":0").split("/")[0] for name in weight_names if "/" in name}
    return len(scopes) > 1


def _optimizer_counters(h5: Any) -> Iterator[StepCounter]:
    """The first of the optimizer's weights named as a step counter (read within the caller's H5_ERRORS guard)."""
    group = h5.get("optimizer_weights")
    for weight_name in (string_list(group.attrs, "weight_names") or []) if group is not None else []:
        leaf = weight_name.removesuffix(":0").rsplit("/", 1)[-1]
        if leaf in STEP_NAMES:
            dataset = group.get(weight_name)
            if dataset is not None:
                integer = dataset.dtype.kind in "iu"
                yield StepCounter(leaf, "optimizer iterations", dataset.shape, integer, lambda d=dataset: d[()])
            return
