"""A PyTorch state dict as bncheck's facts: which tensors are BN layers, their names, counters and steps.

The state dict is found in what the file holds: the object itself, or under ``state_dict``,
``model_state_dict``, ``model`` ... (Lightning's ``.ckpt``, training scripts' dicts), or the modules of a
pickled ``nn.Module`` (``torch.save(model)``: read as data, never built). A BN layer is a module path
with ``running_mean``/``running_var`` (BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm with
``track_running_stats``, FrozenBatchNorm2d); weight/bias alone (GroupNorm, LayerNorm, a BN without running
statistics) is not one. Its variables are named ``<module path>/<role>`` with the roles of every format
(``weight`` is gamma, ``bias`` beta, ``running_mean``/``running_var`` the moving statistics), container
prefixes (``module.`` of DataParallel/DDP, ``_orig_mod.`` of torch.compile, Lightning's ``model.``) removed.
In a file where no module has statistics, the weight/bias of modules named like BN (``bn1``) are BN layers
too: only the parameters were saved (BN001).
``num_batches_tracked`` becomes the layer's ``batches_tracked`` hint: it counts the updates exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BncheckError, FormatError
from ..facts import Framework, LayerHints, ModelFile, Step, Variable
from ..naming import BN_NAME
from .pickle_globals import DType, Opaque, TensorRef

if TYPE_CHECKING:
    import numpy as np

ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
COUNTER = "num_batches_tracked"
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "model_state", "weights")
OTHER_STATE_KEYS = ("ema", "model_ema", "ema_state_dict", "teacher", "student", "target")
CONTAINER_PREFIXES = ("module.", "_orig_mod.", "model.")
_SHOWN = 3
MAX_MODULE_PATHS = 1_000_000


@dataclass
class Loaded:
    """The object a torch file holds, how to read a tensor of it, and what the reader saw."""

    value: Any
    unknown: list[str]  # classes and functions it names that bncheck does not know (skipped, never run)
    read: Callable[[TensorRef], np.ndarray]
    format: str
    close: Callable[[], None]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tensor:
    """One tensor of a state dict, its values not read."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class StateDict:
    """The tensors of a state dict by key, how to read one, and what the file says around them."""

    tensors: Mapping[str, Tensor]
    read: Callable[[str], np.ndarray]  # key -> values (native order; bfloat16 as float32)
    framework: Framework = Framework.TORCH
    step: Step | None = None
    hints: Mapping[str, LayerHints] | None = None  # by key prefix, where a pickled module says more
    notes: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None  # every key of the state dict, where ``tensors`` holds only some


def model_of(loaded: Loaded, path: Path, shown: str) -> ModelFile:
    """The BN layers of the state dict in a loaded ``torch.save`` file."""
    notes = list(loaded.notes)
    found = find_state(loaded.value)
    if found is None:
        what = type(loaded.value).__name__ if not isinstance(loaded.value, Opaque) else str(loaded.value.cls)
        raise FormatError(f"{shown}: holds a {what} with no tensors: no state dict to check{_unknown(loaded)}")
    where, tensors, hints = found
    if where:
        notes.append(f"the state dict read is the one under {where}")
    notes += _others(loaded.value, where)
    if loaded.unknown:
        shown_names = ", ".join(loaded.unknown[:_SHOWN]) + (", ..." if len(loaded.unknown) > _SHOWN else "")
        notes.append(
            f"it names {len(loaded.unknown)} class(es) or function(s) bncheck does not know ({shown_names}): "
            "read as data, never imported or run; torch.load(weights_only=True) would refuse the file"
        )
    state = StateDict(
        {key: Tensor(ref.dtype, ref.shape) for key, ref in tensors.items()},
        lambda key: loaded.read(tensors[key]),
        step=_step(loaded.value, loaded.read),
        hints=hints,
        notes=tuple(notes),
    )
    return state_model(state, shown, loaded.format, str(path), loaded.close)


def state_model(state: StateDict, shown: str, fmt: str, main_file: str, close: Callable[[], None]) -> ModelFile:
    """A :class:`ModelFile` of the BN layers of ``state``."""
    strip = _container_prefix(state.keys if state.keys is not None else tuple(state.tensors))
    layers: dict[str, dict[str, str]] = {}  # module path (as keyed) -> leaf -> key
    for key in state.tensors:
        prefix, _, leaf = key.rpartition(".")
        if leaf in ROLES or leaf == COUNTER:
            layers.setdefault(prefix, {})[leaf] = key
    variables: list[Variable] = []
    hints: dict[str, LayerHints] = {}
    errors: list[str] = []
    counted: dict[str, int] = {}

    def read(key: str) -> np.ndarray:
        return state.read(key)

    tracked = any("running_mean" in members or "running_var" in members for members in layers.values())
    for prefix, members in layers.items():
        if "running_mean" not in members and "running_var" not in members and (tracked or not _named_bn(prefix)):
            continue  # GroupNorm, LayerNorm, a BN without running statistics: nothing to judge
        name = prefix[len(strip) :] or "(root)"
        for leaf, role in ROLES.items():
            if leaf in members:
                tensor = state.tensors[members[leaf]]
                variables.append(Variable(members[leaf], f"{name}/{role}", tensor.dtype, tensor.shape, read))
        layer_hints = (state.hints or {}).get(prefix, LayerHints())
        if COUNTER in members:
            try:
                counted[name] = _counter(state, members[COUNTER], shown)
            except BncheckError as exc:
                errors.append(str(exc))
            else:
                layer_hints = replace(layer_hints, batches_tracked=counted[name])
        if layer_hints != LayerHints():
            hints[name] = layer_hints
    notes = [*state.notes, *_counter_notes(counted)]
    return ModelFile(
        shown,
        fmt,
        tuple(variables),
        state.step,
        hints,
        tuple(errors),
        tuple(notes),
        main_file=main_file,
        framework=state.framework,
        close=close,
    )


def _named_bn(prefix: str) -> bool:
    """A module named like a BN layer (``bn1``, ``batchnorm``), in a file where no module has statistics: the
    parameters alone were saved (a file that keeps some modules' statistics built the others without)."""
    return bool(BN_NAME.search(prefix.rpartition(".")[2]))


def _counter(state: StateDict, key: str, shown: str) -> int:
    tensor = state.tensors[key]
    if tensor.shape not in ((), (1,)) or tensor.dtype not in ("int64", "int32"):
        raise FormatError(f"{shown}: {key} is a {tensor.dtype} tensor of shape {list(tensor.shape)}, not a count")
    count = int(state.read(key).reshape(-1)[0])
    if count < 0:
        raise FormatError(f"{shown}: {key} is {count}: a count of updates is never negative (the file is damaged)")
    return count


def _counter_notes(counted: dict[str, int]) -> list[str]:
    """A note when most BN layers counted updates and some none: those never ran in train mode."""
    zero = [name for name, count in counted.items() if count == 0]
    if not zero or len(zero) == len(counted):
        return []
    most = max(counted.values())
    examples = ", ".join(zero[:_SHOWN]) + (", ..." if len(zero) > _SHOWN else "")
    return [
        f"num_batches_tracked is 0 in {len(zero)} of {len(counted)} BN layers ({examples}) and up to {most} in "
        "the others: those layers never ran in train mode (kept in eval() while the rest trained, or unused)"
    ]


def _container_prefix(keys: tuple[str, ...]) -> str:
    """The prefix every key shares that only says how the model was wrapped (``module.``, ``model.``...)."""
    strip = ""
    changed = True
    while changed and keys:
        changed = False
        for prefix in CONTAINER_PREFIXES:
            candidate = strip + prefix
            if all(key.startswith(candidate) for key in keys):
                strip, changed = candidate, True
                break
    return strip


# --------------------------------------------------------------------------- finding the state dict


def _tensor_items(value: Any) -> dict[str, TensorRef] | None:
    """``value``'s tensors by key if it is a state dict (a mapping with tensor values), else None."""
    if isinstance(value, dict):
        tensors = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, TensorRef)}
        return tensors or None
    return None


Found = tuple[str, dict[str, TensorRef], dict[str, LayerHints] | None]


def find_state(value: Any) -> Found | None:
    """(where, tensors by key, hints from a pickled module) of the state dict ``value`` holds: the value
    itself, or a training checkpoint's, under a known key (``state_dict``, ``model``...) first, since such a
    checkpoint also keeps tensors of its own (``best_acc1``); else under whichever key holds the most tensors."""
    if not isinstance(value, dict):
        found = _state_at(value)
        return ("", *found[1:]) if found else None
    for key in STATE_KEYS + OTHER_STATE_KEYS:
        found = _state_at(value.get(key))
        if found is not None:
            return f"'{key}'{found[0]}", found[1], found[2]
    direct = _tensor_items(value) or {}
    nested = [(key, found) for key, inner in value.items() if isinstance(key, str) and (found := _state_at(inner))]
    key, best = max(nested, key=lambda item: len(item[1][1]), default=(None, None))
    if best is not None and len(best[1]) > len(direct):
        return f"'{key}'{best[0]}", best[1], best[2]
    return ("", direct, None) if direct else None


def _state_at(value: Any) -> tuple[str, dict[str, TensorRef], dict[str, LayerHints] | None] | None:
    """(how it was found, tensors, hints) if ``value`` is a state dict or a pickled module with tensors."""
    direct = _tensor_items(value)
    if direct is not None:
        return "", direct, None
    if isinstance(value, Opaque) and _is_module(value):
        tensors, hints = _module_tensors(value)
        if tensors:
            return f" (a pickled {value.cls.name}, read as data)", tensors, hints
    return None


def _others(value: Any, where: str) -> list[str]:
    """Notes on the other state dicts the file holds (an EMA copy, a teacher): not inspected."""
    if not isinstance(value, dict) or not where:
        return []
    others = [
        key
        for key in STATE_KEYS + OTHER_STATE_KEYS
        if f"'{key}'" != where.split(" ")[0] and _state_at(value.get(key)) is not None
    ]
    return [f"it also holds {', '.join(others)}: not inspected"] if others else []


def _is_module(value: Opaque) -> bool:
    attributes = value.attributes()
    return "_modules" in attributes or "_parameters" in attributes


def _module_tensors(root: Opaque) -> tuple[dict[str, TensorRef], dict[str, LayerHints]]:
    """The tensors a pickled ``nn.Module`` holds, keyed as its state_dict() would (a module reachable by two
    paths, a tied one, under both), and what its BN modules' attributes say (momentum, eps, FrozenBatchNorm2d)."""
    tensors: dict[str, TensorRef] = {}
    hints: dict[str, LayerHints] = {}
    for prefix, module in _walk(root):
        attributes = module.attributes()
        skipped = attributes.get("_non_persistent_buffers_set") or ()
        for group in ("_parameters", "_buffers"):
            entries = attributes.get(group)
            if isinstance(entries, dict):
                for key, tensor in entries.items():
                    if isinstance(tensor, TensorRef) and isinstance(key, str) and key not in skipped:
                        tensors[f"{prefix}{key}"] = tensor
        module_hints = _bn_hints(module.cls.name, attributes)
        if module_hints is not None:
            hints[prefix.rstrip(".")] = module_hints
    return tensors, hints


def _walk(root: Opaque) -> Iterator[tuple[str, Opaque]]:
    """Every (path prefix, module) of the tree under ``root``, as ``state_dict()`` visits it: by every path,
    a module that contains itself not again, and no more than ``MAX_MODULE_PATHS`` paths (a pickle's memo can
    share one module list to make 2^40 of them: counted first, once per module, and refused at once)."""
    if _path_count(root) > MAX_MODULE_PATHS:
        raise FormatError(f"the pickled module has more than {MAX_MODULE_PATHS} submodule paths")
    stack: list[tuple[str, Opaque, frozenset[int]]] = [("", root, frozenset())]
    visited = 0
    while stack:
        prefix, current, ancestors = stack.pop()
        visited += 1
        if visited > MAX_MODULE_PATHS:  # (a module that contains itself can still make more than counted)
            raise FormatError(f"the pickled module has more than {MAX_MODULE_PATHS} submodule paths")
        yield prefix, current
        inside = ancestors | {id(current)}
        for name, child in reversed(_children(current)):
            if id(child) not in inside:
                stack.append((f"{prefix}{name}.", child, inside))


def _children(module: Opaque) -> list[tuple[str, Opaque]]:
    children = module.attributes().get("_modules")
    if not isinstance(children, dict):
        return []
    return [(name, child) for name, child in children.items() if isinstance(child, Opaque) and isinstance(name, str)]


def _path_count(root: Opaque) -> int:
    """How many paths lead from ``root`` to its modules (itself included), each module counted once
    (post-order over the module graph; a child that is an ancestor on the way counts 0), capped just past
    MAX_MODULE_PATHS."""
    counts: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Opaque, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            active.discard(key)
            below = sum(counts.get(id(child), 0) for _, child in _children(node) if id(child) not in active)
            counts[key] = min(1 + below, MAX_MODULE_PATHS + 1)
        elif key not in counts and key not in active:
            active.add(key)
            stack.append((node, True))
            stack.extend((child, False) for _, child in _children(node) if id(child) not in counts)
    return counts[id(root)]


def _bn_hints(class_name: str, attributes: dict) -> LayerHints | None:
    """Momentum (as the weight of the history, like Keras's), epsilon and frozenness of a pickled BN module."""
    if "Norm" not in class_name or "running_mean" not in (attributes.get("_buffers") or {}):
        return None
    momentum = attributes.get("momentum")
    epsilon = attributes.get("eps")
    return LayerHints(
        momentum=1.0 - momentum if isinstance(momentum, float | int) and not isinstance(momentum, bool) else None,
        epsilon=float(epsilon) if isinstance(epsilon, float | int) and not isinstance(epsilon, bool) else None,
        trainable=not class_name.startswith("FrozenBatchNorm"),
    )


# --------------------------------------------------------------------------- steps


def _step(value: Any, read: Callable[[TensorRef], np.ndarray]) -> Step | None:
    """The training steps a checkpoint dict records: Lightning's ``global_step``, a script's ``step`` or
    ``iteration``, the optimizer's per-parameter ``step``, else its ``epoch``."""
    if not isinstance(value, dict):
        return None
    for key in ("global_step", "iteration", "iter", "step", "steps"):
        count = _number(value.get(key), read)
        if count is not None:
            return Step(count, key)
    optimizers = [value.get(k) for k in ("optimizer", "optimizer_state_dict", "optim", "opt")]
    states = value.get("optimizer_states")
    optimizers += states if isinstance(states, list) else []
    counts = [
        count
        for optimizer in optimizers
        if isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
        for entry in optimizer["state"].values()
        if isinstance(entry, dict) and (count := _number(entry.get("step"), read)) is not None
    ]
    if counts:
        return Step(max(counts), "optimizer step")
    epoch = _number(value.get("epoch"), read)
    return Step(epoch, "epoch") if epoch is not None else None


def _number(value: Any, read: Callable[[TensorRef], np.ndarray]) -> int | None:
    if isinstance(value, bool | DType):
        return None
    if isinstance(value, int) and 0 <= value < 1 << 63:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value < 2.0**63:
        return int(value)
    if isinstance(value, TensorRef) and value.shape in ((), (1,)):
        try:
            number = float(read(value).reshape(-1)[0])
        except BncheckError:
            return None
        return int(number) if number.is_integer() and 0 <= number < 2.0**63 else None
    return None


def _unknown(loaded: Loaded) -> str:
    return f" (it names {', '.join(loaded.unknown[:_SHOWN])})" if loaded.unknown else ""
