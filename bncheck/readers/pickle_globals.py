"""What the globals of a pickle stand for, to the restricted machine of :mod:`.pickles`: the few it rebuilds
as data (tensors, storages, containers, numpy scalars), the ones that run code (refused), and the object
every other one becomes (:class:`Opaque`: never imported, never called).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError
from .geometry import geometry_problem

# Element types of torch storages and dtypes, by the names pickles use: (numpy dtype, element size).
STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
TORCH_DTYPES = {
    "float64": "float64",
    "double": "float64",
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}

# Modules and names whose globals run code when a pickle is loaded (after picklescan's dangerous list, plus
# importlib and builtins.__import__, which it lacks); "*": every name in the module and its submodules.
_RUNS_CODE_TABLE = """
builtins: eval exec execfile compile open getattr setattr delattr __import__ globals locals vars input breakpoint
builtins: apply help memoryview
__builtin__: eval exec execfile compile open getattr setattr delattr __import__ file
operator: attrgetter methodcaller itemgetter call
functools: partial reduce partialmethod
types: FunctionType CodeType LambdaType MethodType ModuleType
io: open open_code FileIO
_io: open open_code FileIO
numpy: load loadtxt fromfile
numpy.testing._private.utils: runstring
torch: load hub
torch.serialization torch.hub torch.jit torch._dynamo torch.fx torch._inductor torch.utils.cpp_extension: *
os posix nt subprocess sys socket shutil runpy importlib pickle _pickle cPickle marshal code codeop ctypes pty: *
webbrowser asyncio multiprocessing pip setuptools distutils bdb pdb pydoc venv timeit cProfile profile trace: *
doctest httplib http.client urllib requests aiohttp ftplib smtplib telnetlib dill cloudpickle zipimport: *
"""


def _table(text: str) -> dict[str, frozenset[str] | None]:
    table: dict[str, frozenset[str] | None] = {}
    for line in text.strip().splitlines():
        modules, _, names = line.partition(":")
        for module in modules.split():
            if names.strip() == "*":
                table[module] = None
            else:
                table[module] = (table.get(module) or frozenset()) | frozenset(names.split())
    return table


_RUNS_CODE = _table(_RUNS_CODE_TABLE)


def runs_code(module: str, name: str) -> bool:
    """Whether loading a pickle that names ``module.name`` would run code (imports or calls it)."""
    parts = module.split(".")
    for cut in range(1, len(parts) + 1):
        names = _RUNS_CODE.get(".".join(parts[:cut]), frozenset())
        if names is None or (cut == len(parts) and name.partition(".")[0] in names):
            return True
    return False


@dataclass(frozen=True)
class Global:
    """A global the pickle names (a class or function), never imported."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class Opaque:
    """An object of a class the machine does not know: its class, arguments and state as data, never built."""

    cls: Global
    args: tuple = ()
    state: Any = None
    items: dict = field(default_factory=dict)  # what SETITEM(S) added (a dict subclass)
    appended: list = field(default_factory=list)  # what APPEND(S) added (a list subclass)

    def attributes(self) -> dict:
        """Its instance attributes: the BUILD state (or the dict part of a (dict, slots) state)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            merged = dict(state[0] or {})
            merged.update(state[1] if isinstance(state[1], dict) else {})
            return merged
        return state if isinstance(state, dict) else {}


@dataclass(frozen=True)
class StorageRef:
    """A torch storage named by a persistent id: where its bytes are (its key) and their element type."""

    key: str
    dtype: str  # a numpy dtype name, or "bfloat16"
    numel: int  # elements, as the pickle says (None in newer files' untyped storages: -1)
    view: tuple | None = None  # legacy files: (view key, offset, size) of a storage view, else None


@dataclass(frozen=True)
class TensorRef:
    """A tensor: a window (offset, size, stride, in elements) on a storage; values read by the caller."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool | None = None  # as a Parameter was saved; None: a plain tensor (a buffer)

    @property
    def dtype(self) -> str:
        return self.storage.dtype


class DType(str):
    """A torch dtype named by the pickle (``torch.float32``), as its numpy name."""


class OrderedDict(dict):
    """``collections.OrderedDict`` as data; ``attrs`` holds what BUILD set (a state dict's ``_metadata``)."""

    attrs: dict

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.attrs = {}


_LATIN1 = ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii")
_ATOMS = (str, bytes, int, float, bool, type(None))
_KEY_BUDGET = 1_000  # items a dict key or set member may hold, counted as hashing visits them


def brief(value: Any) -> str:
    """``value`` shown in a message at bounded cost: an atom's repr cut short, else its type."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    if isinstance(value, _ATOMS):
        text = repr(value[:60] if isinstance(value, str | bytes) else value)
        return text + ("..." if isinstance(value, str | bytes) and len(value) > 60 else "")
    return f"a {type(value).__name__}"


def hashable(value: Any) -> Any:
    """``value``, checked to be a key hashing can afford: an atom, a global, a tensor, or a tuple or frozenset
    of them holding at most a thousand items in all (counted with repeats: a pickle's memo can share one
    tuple a thousand times over and make hashing it take 2^40 steps). Raises FormatError otherwise."""
    budget = _KEY_BUDGET
    pending = [value]
    while pending:
        item = pending.pop()
        budget -= 1
        if budget < 0:
            raise FormatError("the pickle uses a dict key or set member of more than a thousand items")
        if isinstance(item, tuple | frozenset):
            pending.extend(item)
        elif not isinstance(item, (*_ATOMS, Global, DType, StorageRef, TensorRef)):
            raise FormatError(f"the pickle uses {brief(item)} as a dict key or set member")
    return value


def _str(*args: Any) -> Any:
    """``str(atom)``, or ``str(bytes, encoding)`` in one of the encodings pickles use for text (any other
    encoding would make Python import a codec module the file chooses)."""
    if len(args) == 1 and isinstance(args[0], _ATOMS) and not isinstance(args[0], bytes):
        return str(args[0])
    text, encoding, errors = (*args, None, None, None)[:3]
    plain = len(args) <= 3 and errors in (None, "strict") and isinstance(text, bytes | bytearray)
    if plain and isinstance(encoding, str) and encoding.lower() in _LATIN1:
        return str(text, encoding)
    raise FormatError(f"the pickle calls str with {', '.join(brief(a) for a in args) or 'nothing'}")


def _keys_checked(build: Callable[..., Any]) -> Callable[..., Any]:
    """``set``, ``frozenset``, ``dict``, ``list``, ``tuple`` of a container the pickle gives (a dict's or set's
    keys checked first); nothing else is iterated (``list(bytes)`` would make a Python int of every byte)."""

    def run(*args: Any) -> Any:
        if not args:
            return build()
        if len(args) > 1 or not isinstance(args[0], list | tuple | set | frozenset | dict):
            raise FormatError(f"the pickle calls {build.__name__} with {', '.join(brief(a) for a in args)}")
        source = args[0]
        if build is dict and not isinstance(source, dict):
            if not all(isinstance(pair, tuple | list) and len(pair) == 2 for pair in source):
                raise FormatError("the pickle builds a dict from items that are not pairs")
            return {hashable(key): value for key, value in source}
        if build in (set, frozenset) and not isinstance(source, set | frozenset | dict):
            return build(hashable(item) for item in source)
        return build(source)

    return run


def _device(*args: Any) -> Any:
    """``torch.device('cuda', 0)`` as its text."""
    if not all(isinstance(a, str | int) and not isinstance(a, bool) for a in args) or len(args) > 2:
        raise FormatError("the pickle names a torch.device by something other than a type and an index")
    return ":".join(str(a)[:60] for a in args)


_SAFE_BUILTINS: dict[str, Callable[..., Any]] = {
    "set": _keys_checked(set),
    "frozenset": _keys_checked(frozenset),
    "dict": _keys_checked(dict),
    "list": _keys_checked(list),
    "tuple": _keys_checked(tuple),
    "int": int,
    "float": float,
    "bool": bool,
    "str": _str,
}
# Data-like classes of real checkpoints: read as data (their state and items), never built.
DATA_CLASSES = frozenset(
    (
        "argparse.Namespace",
        "pytorch_lightning.utilities.parsing.AttributeDict",
        "lightning.pytorch.utilities.parsing.AttributeDict",
        "lightning.fabric.utilities.data.AttributeDict",
        "lightning_fabric.utilities.data.AttributeDict",
        "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig",
    )
)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorRef:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])``
    and the older ``_rebuild_tensor(storage, offset, size, stride)``, as a reference."""
    if not isinstance(storage, StorageRef):
        raise FormatError(f"a tensor is rebuilt from {type(storage).__name__}, not a storage")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(strides) or not isinstance(offset, int) or offset < 0:
        raise FormatError(f"a tensor has {len(shape)} sizes and {len(strides)} strides at offset {brief(offset)}")
    problem = geometry_problem(shape, strides, offset)
    if problem:
        raise FormatError(f"a tensor claims {problem}")
    return TensorRef(storage, offset, shape, strides)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise FormatError(f"a tensor's {what} is {brief(value)}, not a sequence of integers")
    if any(v < 0 for v in value):
        raise FormatError(f"a tensor's {what} has a negative entry")
    return tuple(value)


def _rebuild_parameter(data: Any, requires_grad: Any = None, *rest: Any) -> Any:
    if isinstance(data, TensorRef):
        return TensorRef(data.storage, data.offset, data.shape, data.stride, bool(requires_grad))
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    """``torch._tensor._rebuild_from_type_v2(func, type, args, state)``: a tensor subclass; its tensor."""
    if callable(func) and isinstance(args, tuple):
        return func(*args)
    return Opaque(Global("torch._tensor", "_rebuild_from_type_v2"), (func, new_type, args, state))


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    import numpy as np

    if isinstance(dtype, np.dtype) and isinstance(data, bytes) and len(data) == dtype.itemsize:
        return np.frombuffer(data, dtype)[0].item()
    return Opaque(Global("numpy.core.multiarray", "scalar"), (dtype, data))


def _numpy_dtype(name: Any, *rest: Any) -> Any:
    import numpy as np

    try:
        dtype = np.dtype(name) if isinstance(name, str) and len(name) <= 8 else None
    except TypeError:
        dtype = None
    return dtype if dtype is not None and dtype.kind in "biufc" else Opaque(Global("numpy", "dtype"), (name, *rest))


def _encode(text: Any, encoding: Any = "utf-8", *rest: Any) -> Any:
    """``_codecs.encode(str, 'latin1')``: how protocol 2 pickles Python 3 bytes."""
    if isinstance(text, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1:
        return text.encode(encoding)
    raise FormatError(f"_codecs.encode with encoding {brief(encoding)}: not a way of pickling bytes")


_KNOWN_CALLS: dict[str, Callable[..., Any]] = {
    "collections.OrderedDict": OrderedDict,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    "torch.nn.parameter.Parameter": _rebuild_parameter,
    "torch.Size": lambda *args: tuple(args[0]) if args else (),
    "torch.device": _device,
    "_codecs.encode": _encode,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.dtype": _numpy_dtype,
    **{f"builtins.{name}": function for name, function in _SAFE_BUILTINS.items()},
    **{f"__builtin__.{name}": function for name, function in _SAFE_BUILTINS.items()},
}


def known(module: str, name: str) -> Any:
    """What a known global stands for: a call the machine does itself, a storage type, a dtype; else None."""
    full = f"{module}.{name}"
    if full in _KNOWN_CALLS:
        return _KNOWN_CALLS[full]
    if module == "torch" and name in STORAGE_DTYPES:
        return ("storage", STORAGE_DTYPES[name])
    if module == "torch" and name in TORCH_DTYPES:
        return DType(TORCH_DTYPES[name])
    if module == "torch" and name == "UntypedStorage":
        return ("storage", "uint8")
    if module.partition(".")[0] == "torch" and name.endswith("Storage"):  # complex, quantized, untyped views
        return ("storage", f"{UNREAD}{full}")
    return None


_TORCH_KINDS = re.compile(r"(float8_\w+|u?int\d+|c?float\d+|complex\d+|c?double|c?half|q\w+|per_\w+|bits\w+)")


def torch_allows(module: str, name: str) -> bool:
    """Whether ``torch.load(weights_only=True)`` accepts the global, though bncheck does not read what it
    makes (a tensor kind or dtype it does not read: float8, quantized, complex; a data-like class)."""
    if f"{module}.{name}" in DATA_CLASSES:
        return True
    if module == "torch._utils":
        return name.startswith("_rebuild_")
    return module == "torch" and bool(_TORCH_KINDS.fullmatch(name))


UNREAD = "unread "  # the dtype of a storage of a type bncheck does not read: refused only if a BN tensor is on it
