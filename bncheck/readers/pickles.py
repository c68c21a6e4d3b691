"""A restricted pickle machine: the opcodes a saved state dict needs, and no code ever run.

``torch.save`` writes a pickle; ``pickle.load`` would import and call whatever globals it names, so a
checkpoint can run any code on the machine that loads it. This machine reads the opcode stream itself and
never imports or calls a global it names. It knows, as data, only what rebuilds tensors and containers
(:func:`.pickle_globals.known`, in the spirit of ``torch.load(weights_only=True)``'s allow-list); it refuses
a file naming a global that runs code (:func:`.pickle_globals.runs_code`: ``posix.system``, ``builtins.eval``,
``subprocess.*``... after picklescan's list) with :class:`~bncheck.errors.UnsafeFileError`; every other
global becomes an :class:`~.pickle_globals.Opaque` object (its name, arguments and state kept as data,
nothing called), and is named in a note.

Tensors come back as :class:`~.pickle_globals.TensorRef` (which storage, which dtype, offset, size,
stride): the values are read later, and only for the tensors that are wanted, by the caller that knows
where the storages are.
"""

from __future__ import annotations

import _compat_pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BncheckError, FormatError, UnsafeFileError
from .files import Bytes
from .pickle_globals import Global, Opaque, OrderedDict, brief, hashable, known, runs_code, torch_allows

MAX_MEMO = 10_000_000  # memo entries; a state dict of 80,000 tensors uses about 15 per tensor
MAX_STACK = 1_000_000
MAX_LINE = 1 << 16  # the text opcodes (GLOBAL, INT...) end their argument with a newline within this


@dataclass
class Loaded:
    """What one pickle holds, and the unknown globals it names."""

    value: Any
    unknown: list[str]


class _Mark:
    pass


_MARK = _Mark()


class Machine:
    """Runs the opcodes of one pickle at ``data[start:]`` (a bytes-like object); ``persistent_load`` turns a
    persistent id (the tuple ``torch.save`` writes for a storage) into a :class:`StorageRef`."""

    def __init__(self, data: Bytes, start: int, persistent_load: Callable[[Any], Any]) -> None:
        self.data = data  # bytes, a read-only map or a remote file: a slice is a copy, so the map can always close
        self.pos = start
        self.persistent_load = persistent_load
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.unknown: list[str] = []

    # --------------------------------------------------------------- bytes
    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise FormatError(f"the pickle ends inside an opcode's argument (wants {count} bytes at {self.pos})")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos, self.pos + MAX_LINE)
        if end < 0:
            raise FormatError(f"the pickle's text argument at {self.pos} has no end")
        text = self.data[self.pos : end]
        self.pos = end + 1
        return text.decode("utf-8", "surrogateescape")

    def unsigned(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def text(self, size: int) -> str:
        raw = self.take(self.unsigned(size))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("the pickle holds a string that is not UTF-8") from None

    # --------------------------------------------------------------- stack
    def push(self, value: Any) -> None:
        if len(self.stack) >= MAX_STACK:
            raise FormatError("the pickle's stack grows past a million items")
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise FormatError("the pickle pops an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise FormatError("the pickle closes a mark it never set")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self) -> Any:
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise FormatError("the pickle refers to an empty stack")
        return self.stack[-1]

    def put(self, index: int) -> None:
        if len(self.memo) >= MAX_MEMO and index not in self.memo:
            raise FormatError("the pickle's memo grows past ten million entries")
        self.memo[index] = self.top()

    def get(self, index: int) -> None:
        if index not in self.memo:
            raise FormatError(f"the pickle refers to memo entry {index}, never stored")
        self.push(self.memo[index])

    # --------------------------------------------------------------- objects
    def global_(self, module: str, name: str) -> Any:
        # protocol 2 spells Python 3 names as Python 2's (subprocess.call as commands.call): read them back as
        # pickle does, with the standard library's table (data only)
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if runs_code(module, name):
            raise UnsafeFileError(f"loading this file with torch.load would run {module}.{name}")
        found = known(module, name)
        if found is not None:
            return found
        full = f"{module}.{name}"
        if not torch_allows(module, name) and full not in self.unknown:
            self.unknown.append(full)
        return Global(module, name)

    def call(self, function: Any, args: Any) -> Any:
        if not isinstance(args, tuple):
            raise FormatError(f"the pickle calls with arguments of type {type(args).__name__}, not a tuple")
        if isinstance(function, Global):
            return Opaque(function, args)
        if isinstance(function, Opaque):  # a call on an unknown object: another unknown object
            return Opaque(function.cls, args)
        if isinstance(function, tuple) and function[:1] == ("storage",):
            return Opaque(Global("torch", "Storage"), args)  # a storage built by call, not by persistent id
        if callable(function):
            try:
                return function(*args)
            except (TypeError, ValueError, OverflowError, MemoryError) as exc:
                raise FormatError(f"the pickle rebuilds an object with unusable arguments ({str(exc)[:200]})") from None
        raise FormatError(f"the pickle calls {brief(function)}")

    def build(self, target: Any, state: Any) -> None:
        if isinstance(target, Opaque):
            target.state = state
        elif isinstance(target, OrderedDict) and isinstance(state, dict):
            target.attrs.update(state)
        elif isinstance(target, dict) and isinstance(state, dict):
            target.update(state)
        # other targets (a tensor's state, a dtype's flags) carry nothing a BN check needs

    def set_items(self, target: Any, pairs: list[Any]) -> None:
        if len(pairs) % 2:
            raise FormatError("the pickle sets a dict item without its value")
        if isinstance(target, Opaque):
            target = target.items
        elif not isinstance(target, dict):
            raise FormatError(f"the pickle sets an item of {brief(target)}")
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            target[hashable(key)] = value

    def append(self, target: Any, values: list[Any]) -> None:
        if isinstance(target, Opaque):
            target.appended.extend(values)
        elif isinstance(target, list):
            target.extend(values)
        elif isinstance(target, set):
            target.update(hashable(value) for value in values)
        else:
            raise FormatError(f"the pickle appends to {brief(target)}")

    # --------------------------------------------------------------- the loop
    def run(self) -> Loaded:
        dispatch = _DISPATCH
        data = self.data
        while True:
            if self.pos >= len(data):
                raise FormatError("the pickle ends without its STOP opcode")
            code = data[self.pos]
            self.pos += 1
            if code == 0x2E:  # STOP
                if len(self.stack) != 1 or self.marks:
                    raise FormatError("the pickle stops with its stack unbalanced")
                return Loaded(self.stack[0], self.unknown)
            handler = dispatch.get(code)
            if handler is None:
                raise FormatError(
                    f"the pickle uses opcode {bytes([code])!r} at {self.pos - 1}, which a state dict does not need"
                )
            handler(self)


def _proto(m: Machine) -> None:
    if m.unsigned(1) > 5:
        raise FormatError("the pickle claims a protocol above 5")


def _frame(m: Machine) -> None:
    m.take(8)  # a frame is only a hint for buffering


def _binpersid(m: Machine) -> None:
    m.push(m.persistent_load(m.pop()))


def _reduce(m: Machine) -> None:
    args = m.pop()
    m.push(m.call(m.pop(), args))


def _newobj(m: Machine) -> None:
    args = m.pop()
    m.push(m.call(m.pop(), args))


def _newobj_ex(m: Machine) -> None:
    m.pop()  # keyword arguments
    _newobj(m)


def _obj(m: Machine) -> None:
    items = m.pop_mark()
    if not items:
        raise FormatError("the pickle's OBJ opcode has no class")
    m.push(m.call(items[0], tuple(items[1:])))


def _inst(m: Machine) -> None:
    module, name = m.line(), m.line()
    cls = m.global_(module, name)
    m.push(m.call(cls, tuple(m.pop_mark())))


def _global(m: Machine) -> None:
    module, name = m.line(), m.line()
    m.push(m.global_(module, name))


def _stack_global(m: Machine) -> None:
    name, module = m.pop(), m.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise FormatError("the pickle's STACK_GLOBAL names are not strings")
    m.push(m.global_(module, name))


def _build(m: Machine) -> None:
    state = m.pop()
    m.build(m.top(), state)


def _setitem(m: Machine) -> None:
    value, key = m.pop(), m.pop()
    m.set_items(m.top(), [key, value])


def _setitems(m: Machine) -> None:
    pairs = m.pop_mark()
    m.set_items(m.top(), pairs)


def _append(m: Machine) -> None:
    value = m.pop()
    m.append(m.top(), [value])


def _appends(m: Machine) -> None:
    values = m.pop_mark()
    m.append(m.top(), values)


def _additems(m: Machine) -> None:
    values = m.pop_mark()
    m.append(m.top(), values)


def _frozenset(m: Machine) -> None:
    m.push(frozenset(hashable(item) for item in m.pop_mark()))


def _dict(m: Machine) -> None:
    items = m.pop_mark()
    target: dict = {}
    m.set_items(target, items)
    m.push(target)


def _int_line(m: Machine) -> None:
    text = m.line()
    if text in ("00", "01"):
        m.push(text == "01")
        return
    try:
        m.push(int(text.rstrip("L")))
    except ValueError:
        raise FormatError(f"the pickle's INT argument {text[:20]!r} is not a number") from None


def _float_line(m: Machine) -> None:
    try:
        m.push(float(m.line()))
    except ValueError:
        raise FormatError("the pickle's FLOAT argument is not a number") from None


def _string_line(m: Machine) -> None:
    text = m.line()
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "'\"":
        raise FormatError("the pickle's STRING argument is not quoted")
    m.push(text[1:-1])


def _long(size: int) -> Callable[[Machine], None]:
    def run(m: Machine) -> None:
        count = m.unsigned(size)
        if count > 1 << 16:
            raise FormatError(f"the pickle holds a {count}-byte integer")
        m.push(int.from_bytes(m.take(count), "little", signed=True))

    return run


def _bytes(size: int) -> Callable[[Machine], None]:
    return lambda m: m.push(m.take(m.unsigned(size)))


def _memoize(m: Machine) -> None:
    m.put(len(m.memo))


def _dup(m: Machine) -> None:
    m.push(m.top())


def _pop(m: Machine) -> None:
    if m.marks and len(m.stack) == m.marks[-1]:
        m.pop_mark()  # POP at a mark discards the mark, as pickle does
    else:
        m.pop()


def _tuple_of(count: int) -> Callable[[Machine], None]:
    def run(m: Machine) -> None:
        items = [m.pop() for _ in range(count)]
        m.push(tuple(reversed(items)))

    return run


def _put_line(m: Machine) -> None:
    try:
        m.put(int(m.line()))
    except ValueError:
        raise FormatError("the pickle's PUT argument is not a number") from None


def _get_line(m: Machine) -> None:
    try:
        m.get(int(m.line()))
    except ValueError:
        raise FormatError("the pickle's GET argument is not a number") from None


_DISPATCH: dict[int, Callable[[Machine], None]] = {
    0x80: _proto,
    0x95: _frame,
    ord("Q"): _binpersid,
    ord("P"): lambda m: m.push(m.persistent_load(m.line())),
    ord("R"): _reduce,
    0x81: _newobj,
    0x92: _newobj_ex,
    ord("o"): _obj,
    ord("i"): _inst,
    ord("c"): _global,
    0x93: _stack_global,
    ord("b"): _build,
    ord("("): lambda m: (m.marks.append(len(m.stack)), None)[1],
    ord("t"): lambda m: m.push(tuple(m.pop_mark())),
    ord(")"): lambda m: m.push(()),
    0x85: _tuple_of(1),
    0x86: _tuple_of(2),
    0x87: _tuple_of(3),
    ord("]"): lambda m: m.push([]),
    ord("l"): lambda m: m.push(m.pop_mark()),
    ord("}"): lambda m: m.push({}),
    ord("d"): _dict,
    0x8F: lambda m: m.push(set()),
    0x90: _additems,
    0x91: _frozenset,
    ord("s"): _setitem,
    ord("u"): _setitems,
    ord("a"): _append,
    ord("e"): _appends,
    ord("q"): lambda m: m.put(m.unsigned(1)),
    ord("r"): lambda m: m.put(m.unsigned(4)),
    0x94: _memoize,
    ord("p"): _put_line,
    ord("h"): lambda m: m.get(m.unsigned(1)),
    ord("j"): lambda m: m.get(m.unsigned(4)),
    ord("g"): _get_line,
    ord("0"): _pop,
    ord("1"): lambda m: (m.pop_mark(), None)[1],
    ord("2"): _dup,
    ord("N"): lambda m: m.push(None),
    0x88: lambda m: m.push(True),
    0x89: lambda m: m.push(False),
    ord("J"): lambda m: m.push(int.from_bytes(m.take(4), "little", signed=True)),
    ord("K"): lambda m: m.push(m.unsigned(1)),
    ord("M"): lambda m: m.push(m.unsigned(2)),
    0x8A: _long(1),
    0x8B: _long(4),
    ord("I"): _int_line,
    ord("L"): _int_line,
    ord("G"): lambda m: m.push(struct.unpack(">d", m.take(8))[0]),
    ord("F"): _float_line,
    0x8C: lambda m: m.push(m.text(1)),
    ord("X"): lambda m: m.push(m.text(4)),
    0x8D: lambda m: m.push(m.text(8)),
    ord("V"): lambda m: m.push(m.line()),
    ord("U"): _bytes(1),
    ord("T"): _bytes(4),
    ord("S"): _string_line,
    ord("C"): _bytes(1),
    ord("B"): _bytes(4),
    0x8E: _bytes(8),
    0x96: lambda m: m.push(bytearray(m.take(m.unsigned(8)))),
}


def load(data: Bytes, start: int, persistent_load: Callable[[Any], Any]) -> tuple[Loaded, int]:
    """The object of the pickle at ``data[start:]`` and the offset after its STOP."""
    machine = Machine(data, start, persistent_load)
    try:
        loaded = machine.run()
    except Exception as exc:  # anything the opcodes let through is a damaged pickle, not a crash
        if isinstance(exc, BncheckError):
            raise
        deep = isinstance(exc, RecursionError)
        raise FormatError(f"the pickle {'nests too deep' if deep else f'is damaged ({type(exc).__name__})'}") from None
    return loaded, machine.pos
