"""The ``.index`` file of a TensorFlow tensor bundle: what each tensor is and where its bytes lie.

No TensorFlow: the index is a sorted table (see :mod:`.sstable`) mapping each tensor
name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked CRC-32C);
the key ``""`` holds the ``BundleHeaderProto``. Partitioned variables keep their slices
under keys made by ``checkpoint::EncodeTensorNameSlice`` (OrderedCode), from TensorFlow's
``core/util/tensor_bundle/tensor_bundle.cc``. The data files are read by :mod:`.bundle`.
"""

from __future__ import annotations

import re
import sys
from array import array
from bisect import bisect_left
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from ..errors import FormatError, InputError
from .files import read_bytes
from .lfs import refuse_pointer
from .proto import tf_subset_pb2 as pb
from .sstable import Table

# TensorFlow DataType -> (name shown to users, numpy dtype of the stored bytes).
# bfloat16 is stored as 16-bit words and widened to float32 (exactly) on read.
DTYPES: dict[int, tuple[str, str]] = {
    pb.DT_FLOAT: ("float32", "f4"),
    pb.DT_DOUBLE: ("float64", "f8"),
    pb.DT_HALF: ("float16", "f2"),
    pb.DT_BFLOAT16: ("bfloat16", "u2"),
    pb.DT_INT8: ("int8", "i1"),
    pb.DT_INT16: ("int16", "i2"),
    pb.DT_INT32: ("int32", "i4"),
    pb.DT_INT64: ("int64", "i8"),
    pb.DT_UINT8: ("uint8", "u1"),
    pb.DT_UINT16: ("uint16", "u2"),
    pb.DT_UINT32: ("uint32", "u4"),
    pb.DT_UINT64: ("uint64", "u8"),
    pb.DT_BOOL: ("bool", "?"),
    pb.DT_COMPLEX64: ("complex64", "c8"),
    pb.DT_COMPLEX128: ("complex128", "c16"),
}
_LABELS = {code: label for code, (label, _) in DTYPES.items()} | {pb.DT_STRING: "string"}


class TensorInfo(NamedTuple):  # a tuple, not a frozen dataclass: 3x cheaper to make, 80,000 times
    """What the index says about one tensor, without reading its data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    partitioned: bool


class Entry(NamedTuple):
    """The fields of a ``BundleEntryProto`` the reader uses (``slices``: the repeated message, or ())."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: Any = ()


_INT32, _INT64 = 2**31, 2**63
_VARINT = rb"([\x80-\xff]{0,9}[\x00-\x7f])"
# An entry as TensorFlow writes it: dtype and shape (one-byte tags and lengths: group 1), then shard_id, offset
# and size as varints (each left out when 0) and the crc32c, each once, in field order.
_PLAIN_ENTRY = re.compile(
    rb"(\x08[\x00-\x7f](?:\x12[\x00-\x7f](?:\x12[\x00-\x7f](?:\x08[\x80-\xff]{0,9}[\x00-\x7f])?)*)?)"
    rb"(?:\x18" + _VARINT + rb")?(?:\x20" + _VARINT + rb")?(?:\x28" + _VARINT + rb")?\x35(.{4})",
    re.DOTALL,
)


def _varint_value(raw: bytes) -> int:
    """The value of one whole varint."""
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
    return value


class _Heads(dict[bytes, tuple[int, tuple[int, ...]] | None]):
    """The dtype and shape of each distinct spelling of them (group 1 of ``_PLAIN_ENTRY``), decoded once by
    protobuf: a model has a few dozen among tens of thousands of entries. None unless protobuf reads it as
    nothing but a dtype and a shape of known dimensions, spelled as it would spell them (else the entry is left
    to protobuf)."""

    def __missing__(self, head: bytes) -> tuple[int, tuple[int, ...]] | None:
        try:
            entry = pb.BundleEntryProto.FromString(head)
        except DecodeError:
            entry = None
        decoded = None
        if entry is not None and entry.SerializeToString() == head:
            shape = tuple([d.size for d in entry.shape.dim])
            decoded = None if min(shape, default=0) < 0 else (entry.dtype, shape)
        self[head] = decoded
        return decoded


def _from_proto(entry: Any) -> Entry:
    return Entry(
        entry.dtype,
        tuple([d.size for d in entry.shape.dim]),
        entry.shard_id,
        entry.offset,
        entry.size,
        entry.crc32c,
        entry.slices,
    )


class BundleIndex:
    """A bundle's ``.index`` file, in memory: its header and an entry for each tensor."""

    def __init__(self, index_path: str) -> None:
        self.index_path = index_path
        try:
            data = read_bytes(index_path)
        except OSError as exc:
            raise InputError(f"{index_path}: cannot read ({exc.strerror})") from None
        refuse_pointer(data, index_path)
        # Every entry decoded once, into columns (a few bytes per tensor, not a message or a tuple each): a plain
        # one by a pattern (protobuf's messages are slower to read, field by field, over 80,000 entries); the
        # others keep their bytes for protobuf, which reports any damage on use.
        self._names: list[str] = []  # tensor names, by row; sorted as the index stores them, so found by bisection
        self._rows: dict[str, int] | None = None  # name -> row, only for an index whose keys are out of order
        self._numbers = array("q")  # five per row: shard_id, offset, size, crc32c, dtype
        self._shape_column: list[tuple[int, ...]] = []
        self._undecoded: dict[int, bytes] = {}  # row -> entry bytes
        self._slices: dict[bytes, bytes] = {}
        self._shapes: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per distinct shape, not per tensor
        self._heads = _Heads()
        header = None
        for key, value in Table(data, index_path).items():
            if key == b"":
                header = self._parse(pb.BundleHeaderProto, value, "header")
            elif key[0] == 0:
                self._slices[key] = value
            else:
                # interned: two checkpoints of one model (a diff, a scan) share one string per name
                self._add(sys.intern(key.decode("utf-8", "surrogateescape")), value)
        if header is None:
            raise FormatError(f"{index_path}: no bundle header (not a TensorFlow checkpoint index)")
        if not 1 <= header.num_shards <= 100_000:
            raise FormatError(f"{index_path}: implausible number of data shards ({header.num_shards})")
        if any(a >= b for a, b in zip(self._names, self._names[1:], strict=False)):  # a table's keys increase
            self._rows = {name: row for row, name in enumerate(self._names)}
        self.num_shards = header.num_shards
        self.byteorder = ">" if header.endianness == pb.BundleHeaderProto.BIG else "<"

    def _add(self, name: str, raw: bytes) -> None:
        row = len(self._names)
        self._names.append(name)
        plain = _PLAIN_ENTRY.fullmatch(raw)
        head = plain and self._heads[plain[1]]
        if head is not None:
            _, shard, offset, size, crc = plain.groups()
            shard = _varint_value(shard) if shard else 0
            offset = _varint_value(offset) if offset else 0
            size = _varint_value(size) if size else 0
            if shard < _INT32 and offset < _INT64 and size < _INT64:  # else negative in the proto: left to protobuf
                self._numbers.extend((shard, offset, size, int.from_bytes(crc, "little"), head[0]))
                self._shape_column.append(head[1])
                return
        self._undecoded[row] = raw
        self._numbers.extend((0, 0, 0, 0, 0))
        self._shape_column.append(())

    def _parse(self, message: Any, value: bytes, what: str) -> Any:
        try:
            return message.FromString(value)
        except DecodeError:
            raise FormatError(f"{self.index_path}: unparseable {what}") from None

    def names(self) -> list[str]:
        """Names of all tensors, in the index's (sorted) order."""
        return list(self._names if self._rows is None else self._rows)

    def __contains__(self, name: str) -> bool:
        return self._row(name) is not None

    def _row(self, name: str) -> int | None:
        if self._rows is not None:
            return self._rows.get(name)
        row = bisect_left(self._names, name)  # a list of names, not a dict: 5 MB less for 80,000 tensors
        return row if row < len(self._names) and self._names[row] == name else None

    def _entry(self, name: str) -> Entry:
        row = self._row(name)
        if row is None:
            raise KeyError(name)
        raw = self._undecoded.get(row)
        if raw is not None:
            return _from_proto(self._parse(pb.BundleEntryProto, raw, f"entry of {name!r}"))
        numbers, i = self._numbers, 5 * row
        return Entry(
            numbers[i + 4], self._shape_column[row], numbers[i], numbers[i + 1], numbers[i + 2], numbers[i + 3]
        )

    def _slice_entry(self, name: str, extents: list[tuple[int, int]]) -> Entry | None:
        """The entry of one slice of partitioned variable ``name`` (a full extent is (0, -1)), None if absent."""
        raw = self._slices.get(slice_key(name, extents))
        return None if raw is None else _from_proto(self._parse(pb.BundleEntryProto, raw, f"slice of {name!r}"))

    def info(self, name: str) -> TensorInfo:
        row = self._row(name)
        if row is None:
            raise KeyError(name)
        if row in self._undecoded:
            entry = self._entry(name)
            code, shape, sliced = entry.dtype, self._shapes.setdefault(entry.shape, entry.shape), len(entry.slices) > 0
        else:
            code, shape, sliced = self._numbers[5 * row + 4], self._shape_column[row], False
        return TensorInfo(name, _LABELS.get(code) or f"DataType {code}", shape, sliced)


# OrderedCode, as used by checkpoint::EncodeTensorNameSlice, to find a slice's key.
_HEADER_BITS = [(0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0),
                (0xFC, 0), (0xFE, 0), (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0)]  # fmt: skip


def _num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _signed_num_increasing(value: int) -> bytes:
    magnitude = ~value if value < 0 else value
    if magnitude < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    bits = magnitude.bit_length()
    length = 10 if bits == 63 else bits // 7 + 1
    buf = bytearray((b"\xff\xff" if value < 0 else b"\0\0") + (value & (2**64 - 1)).to_bytes(8, "big"))
    begin = 10 - length
    buf[begin] ^= _HEADER_BITS[length][0]
    buf[begin + 1] ^= _HEADER_BITS[length][1]
    return bytes(buf[begin:])


def slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
    """Index key of one slice of ``name``; a full extent is (0, -1)."""
    escaped = re.sub(
        rb"[\0\xff]", lambda m: b"\0\xff" if m[0] == b"\0" else b"\xff\0", name.encode("utf-8", "surrogateescape")
    )
    key = _num_increasing(0) + escaped + b"\0\x01" + _num_increasing(len(extents))
    for start, length in extents:
        key += _signed_num_increasing(start) + _signed_num_increasing(length)
    return key
