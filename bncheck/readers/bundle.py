"""Native reader of TensorFlow's tensor-bundle checkpoints (``.index`` + ``.data-*``).

No TensorFlow: the index is a sorted table (see :mod:`.sstable`) mapping each tensor
name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked CRC-32C);
the key ``""`` holds the ``BundleHeaderProto``. Data files hold raw C-order bytes,
read here only for the tensors asked for. Facts relied on, from
TensorFlow's ``core/util/tensor_bundle/tensor_bundle.cc``: the entry CRC is the
masked CRC-32C of the tensor's bytes; string tensors are stored as varint64 lengths,
a masked CRC of the lengths, then the bytes, and their CRC covers the lengths as
uint32 (uint64 past 4 GiB), the length CRC and the bytes; partitioned variables keep
their slices under keys made by ``checkpoint::EncodeTensorNameSlice`` (OrderedCode).

Tensors are read with ``os.pread``, not through a memory map: a mapped page counts in the
process's resident set (and the kernel maps whole page-cache folios around each one
touched), so reading only the BN bytes of a multi-GB data file would still grow RSS. Tensors
asked for together (``read_many``) that lie end to end in a data file, as a layer's usually do,
are read with one ``pread`` and their bytes cut apart, each checksum still verified.
"""

from __future__ import annotations

import math
import os
import re
import stat
import struct
from array import array
from collections.abc import Iterator, Sequence
from typing import IO, Any, NamedTuple

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import FormatError, InputError, IntegrityError
from .crc import crc32c, mask
from .lfs import file_pointer_size, pointer_message, refuse_pointer
from .proto import tf_subset_pb2 as pb
from .sstable import Table, varint

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
_BFLOAT16 = pb.DT_BFLOAT16
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
RUN_BYTES = 1 << 20  # read at once by read_many, at most (unless one tensor is larger)
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


class Bundle:
    """One checkpoint prefix: its index in memory, its data shards opened on demand."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.index_path = prefix + ".index"
        try:
            with open(self.index_path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InputError(f"{self.index_path}: cannot read ({exc.strerror})") from None
        refuse_pointer(data, self.index_path)
        # Every entry decoded once, into columns (a few bytes per tensor, not a message or a tuple each): a plain
        # one by a pattern (protobuf's messages are slower to read, field by field, over 80,000 entries); the
        # others keep their bytes for protobuf, which reports any damage on use.
        self._rows: dict[str, int] = {}  # tensor name -> row in the columns
        self._numbers = array("q")  # five per row: shard_id, offset, size, crc32c, dtype
        self._shape_column: list[tuple[int, ...]] = []
        self._undecoded: dict[int, bytes] = {}  # row -> entry bytes
        self._slices: dict[bytes, bytes] = {}
        self._shapes: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per distinct shape, not per tensor
        self._heads = _Heads()
        header = None
        for key, value in Table(data, self.index_path).items():
            if key == b"":
                header = self._parse(pb.BundleHeaderProto, value, "header")
            elif key[0] == 0:
                self._slices[key] = value
            else:
                self._add(key.decode("utf-8", "surrogateescape"), value)
        if header is None:
            raise FormatError(f"{self.index_path}: no bundle header (not a TensorFlow checkpoint index)")
        if not 1 <= header.num_shards <= 100_000:
            raise FormatError(f"{self.index_path}: implausible number of data shards ({header.num_shards})")
        self.num_shards = header.num_shards
        self._byteorder = ">" if header.endianness == pb.BundleHeaderProto.BIG else "<"
        self._files: dict[int, tuple[IO[bytes], int]] = {}  # shard -> (open file, size)
        self._dtypes = {code: np.dtype(self._byteorder + stored) for code, (_, stored) in DTYPES.items()}

    def _add(self, name: str, raw: bytes) -> None:
        row = self._rows[name] = len(self._shape_column)
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
        return list(self._rows)

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    def _entry(self, name: str) -> Entry:
        row = self._rows[name]
        raw = self._undecoded.get(row)
        if raw is not None:
            return _from_proto(self._parse(pb.BundleEntryProto, raw, f"entry of {name!r}"))
        numbers, i = self._numbers, 5 * row
        return Entry(
            numbers[i + 4], self._shape_column[row], numbers[i], numbers[i + 1], numbers[i + 2], numbers[i + 3]
        )

    def info(self, name: str) -> TensorInfo:
        row = self._rows[name]
        if row in self._undecoded:
            entry = self._entry(name)
            code, shape, sliced = entry.dtype, self._shapes.setdefault(entry.shape, entry.shape), len(entry.slices) > 0
        else:
            code, shape, sliced = self._numbers[5 * row + 4], self._shape_column[row], False
        return TensorInfo(name, _LABELS.get(code) or f"DataType {code}", shape, sliced)

    def shard_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def unread_shards(self) -> list[str]:
        """Why data files the index refers to cannot be read: missing, or a Git LFS pointer in the real file's place
        (a file small enough to be one is read; no other data file is)."""
        problems = []
        for path in map(self.shard_path, range(self.num_shards)):
            try:
                info = os.stat(path)
            except OSError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                problems.append(f"{path}: data file missing")
            elif (size := file_pointer_size(path, info.st_size)) is not None:
                problems.append(pointer_message(path, size))
        return problems

    def _shard(self, shard: int) -> tuple[IO[bytes], int]:
        """The open data file of ``shard`` and its size."""
        if shard not in self._files:
            path = self.shard_path(shard)
            if not 0 <= shard < self.num_shards:
                raise FormatError(f"{self.index_path}: entry refers to shard {shard} of {self.num_shards}")
            if len(self._files) >= 64:  # many shards: do not hold a descriptor for each
                self.close()
            try:
                stream = open(path, "rb", buffering=0)  # noqa: SIM115 (kept open for further reads)
            except OSError as exc:
                raise InputError(f"{path}: cannot read data file ({exc.strerror})") from None
            self._files[shard] = (stream, os.fstat(stream.fileno()).st_size)
        return self._files[shard]

    def close(self) -> None:
        """Close the data files (a later read opens them again)."""
        for stream, _ in self._files.values():
            stream.close()
        self._files.clear()

    def _pread(self, shard: int, size: int, start: int) -> bytes:
        stream, _ = self._shard(shard)
        try:
            return os.pread(stream.fileno(), size, start) if size else b""
        except OSError as exc:
            raise InputError(f"{self.shard_path(shard)}: cannot read data file ({exc.strerror})") from None

    def _bytes(self, name: str, entry: Entry) -> bytes:
        _, length = self._shard(entry.shard_id)
        start, size = entry.offset, entry.size
        if start < 0 or size < 0 or start + size > length:
            raise FormatError(
                f"{self.shard_path(entry.shard_id)}: variable '{name}' lies at bytes "
                f"{start}..{start + size}, past the end of the {length}-byte file"
            )
        raw = self._pread(entry.shard_id, size, start)
        if len(raw) != size:
            raise FormatError(f"{self.shard_path(entry.shard_id)}: variable '{name}' is cut short (file truncated?)")
        return raw

    def read(self, name: str) -> np.ndarray:
        """The value of tensor ``name`` (checksum verified); raises on any inconsistency."""
        entry = self._entry(name)
        if entry.slices:
            return self._assemble(name, entry)
        return self._read_entry(name, entry)

    def __call__(self, name: str) -> np.ndarray:
        """A bundle is its Variables' reader: ``bundle(name)`` is :meth:`read`, and it has :meth:`read_many`."""
        return self.read(name)

    def read_many(self, names: Sequence[str]) -> list[np.ndarray]:
        """The values of ``names`` as :meth:`read` returns them, and raising as it does; the tensors that lie
        end to end in a data file (a layer's usually do) are read together, one ``pread`` per RUN_BYTES."""
        values: list[Any] = [None] * len(names)
        pieces: list[_Piece] = []
        for position, name in enumerate(names):
            row = self._rows[name]
            shard, offset, size, crc, code = self._numbers[5 * row : 5 * row + 5]
            shape = self._shape_column[row]
            dtype = self._dtypes.get(code)
            if row in self._undecoded or dtype is None or math.prod(shape) * dtype.itemsize != size:
                values[position] = self.read(name)  # partitioned, strings, anything odd: read() knows what to say
            else:
                pieces.append((shard, offset, position, size, crc, code, shape, dtype))
        pieces.sort()  # by shard and offset (positions differ: nothing further is compared)
        for run in _runs(pieces):
            self._read_run(run, names, values)
        return values

    def _read_run(self, run: list[_Piece], names: Sequence[str], values: list[Any]) -> None:
        """Read tensors that lie end to end in one data file with one ``pread``; if the file cannot give them
        all (it ends before, or shrank) or a checksum fails, each is read alone, which says what is wrong."""
        shard, start = run[0][:2]
        stop = run[-1][1] + run[-1][3]
        inside = stop <= self._shard(shard)[1]
        raw = self._pread(shard, stop - start, start) if inside else b""
        whole = inside and len(raw) == stop - start
        for _, offset, position, size, crc, code, shape, dtype in run:
            piece = raw if len(run) == 1 else raw[offset - start : offset - start + size]
            if whole and mask(crc32c(piece)) == crc:
                values[position] = _array(piece, shape, dtype, code)
            else:
                values[position] = self.read(names[position])

    def _read_entry(self, name: str, entry: Entry) -> np.ndarray:
        shape = entry.shape
        if shape and min(shape) < 0:
            raise FormatError(f"{self.index_path}: variable '{name}' has an unknown dimension {shape}")
        if entry.dtype == pb.DT_STRING:
            return self._read_strings(name, entry, shape)
        if entry.dtype not in DTYPES:
            raise FormatError(f"{self.index_path}: variable '{name}' has unsupported dtype {entry.dtype}")
        dtype = self._dtypes[entry.dtype]
        count = math.prod(shape)
        if count * dtype.itemsize != entry.size:
            raise FormatError(
                f"{self.index_path}: variable '{name}' claims shape {list(shape)} of {DTYPES[entry.dtype][0]} "
                f"({count * dtype.itemsize} bytes) but {entry.size} bytes of data"
            )
        raw = self._bytes(name, entry)
        self._verify(name, entry, crc32c(raw))
        return _array(raw, shape, dtype, entry.dtype)

    def _verify(self, name: str, entry: Entry, crc: int) -> None:
        if mask(crc) != entry.crc32c:
            raise IntegrityError(
                f"{self.shard_path(entry.shard_id)}: checksum mismatch in variable '{name}': "
                "the file is corrupt (its bytes are not what TensorFlow wrote)"
            )

    def _read_strings(self, name: str, entry: Entry, shape: tuple[int, ...]) -> np.ndarray:
        raw = self._bytes(name, entry)
        count = math.prod(shape)
        if count > len(raw):
            raise FormatError(
                f"{self.index_path}: string variable '{name}' claims {count} elements in {len(raw)} bytes"
            )
        lengths, pos, crc = [], 0, 0
        for _ in range(count):
            try:
                length, pos = varint(raw, pos, len(raw))
            except ValueError:
                raise FormatError(f"{self.index_path}: string variable '{name}' is truncated") from None
            lengths.append(length)
            crc = crc32c(struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length), crc)
        crc = crc32c(raw[pos : pos + 4], crc)
        pos += 4
        if pos + sum(lengths) != len(raw):
            raise FormatError(f"{self.index_path}: string variable '{name}' has inconsistent lengths")
        values = []
        for length in lengths:
            values.append(raw[pos : pos + length])
            pos += length
        self._verify(name, entry, crc32c(raw[pos - sum(lengths) : pos], crc))
        array = np.empty(count, dtype=object)
        array[:] = values
        return array.reshape(shape)

    def _assemble(self, name: str, entry: Entry) -> np.ndarray:
        """Put a partitioned variable back together from its slices."""
        shape = entry.shape
        parts = []
        for slice_proto in entry.slices:
            extents = [(e.start, e.length if e.HasField("length") else -1) for e in slice_proto.extent]
            raw = self._slices.get(slice_key(name, extents))
            if raw is None or len(extents) != len(shape):
                raise FormatError(f"{self.index_path}: partitioned variable '{name}' is missing a slice {extents}")
            part = self._read_entry(name, _from_proto(self._parse(pb.BundleEntryProto, raw, f"slice of {name!r}")))
            index = tuple(slice(s, None if n < 0 else s + n) for s, n in extents)
            parts.append((index, part))
        result = np.zeros(shape, dtype=parts[0][1].dtype if parts else np.float32)
        covered = np.zeros(shape, dtype=bool)
        for index, part in parts:
            if result[index].shape != part.shape:
                raise FormatError(f"{self.index_path}: slice of '{name}' does not fit its extent")
            result[index] = part
            covered[index] = True
        if not covered.all():
            raise FormatError(f"{self.index_path}: the slices of partitioned variable '{name}' do not cover it")
        return result


# A tensor for read_many: shard, offset, position in the names, size, crc32c, dtype code, shape, numpy dtype.
_Piece = tuple[int, int, int, int, int, int, tuple[int, ...], np.dtype]


def _array(raw: bytes, shape: tuple[int, ...], dtype: np.dtype, code: int) -> np.ndarray:
    """The tensor of numbers stored in ``raw``, in native byte order (bfloat16 widened to float32)."""
    array = np.frombuffer(raw, dtype) if len(shape) == 1 else np.ndarray(shape, dtype, buffer=raw)  # no copy
    if code == _BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _runs(pieces: list[_Piece]) -> Iterator[list[_Piece]]:
    """Consecutive ``pieces`` (sorted by shard and offset) that lie end to end in one shard, RUN_BYTES at most
    together (or one larger piece)."""
    run: list[_Piece] = []
    start = end = 0
    for piece in pieces:
        shard, offset, _, size = piece[:4]
        if run and (shard != run[0][0] or offset != end or end + size - start > RUN_BYTES):
            yield run
            run = []
        if not run:
            start = end = offset
        run.append(piece)
        end += size
    if run:
        yield run


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
