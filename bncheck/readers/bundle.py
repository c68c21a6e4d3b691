"""Native reader of TensorFlow's tensor-bundle checkpoints (``.index`` + ``.data-*``): the tensors' values.

No TensorFlow. The index (see :mod:`.bundle_index`) says where each tensor's bytes lie; the data files hold
them as raw C-order bytes, read here only for the tensors asked for. Facts relied on, from TensorFlow's
``core/util/tensor_bundle/tensor_bundle.cc``: the entry CRC is the masked CRC-32C of the tensor's bytes; string
tensors are stored as varint64 lengths, a masked CRC of the lengths, then the bytes, and their CRC covers the
lengths as uint32 (uint64 past 4 GiB), the length CRC and the bytes; partitioned variables are read slice by slice.

Tensors are read with ``os.pread`` (a remote data file: by range, see :mod:`.files`), not through a memory
map: a mapped page counts in the process's resident set (and the kernel maps whole page-cache folios around each one
touched), so reading only the BN bytes of a multi-GB data file would still grow RSS. Tensors
asked for together (``read_many``) that lie end to end in a data file, as a layer's usually do,
are read with one ``pread`` and their bytes cut apart, each checksum still verified.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

from ..errors import BncheckError, FormatError, InputError, IntegrityError
from .bundle_index import DTYPES, BundleIndex, Entry
from .crc import crc32c, mask
from .files import open_binary, pread, prefetch, regular_size, size_of
from .lfs import file_pointer_size, pointer_message
from .proto import tf_subset_pb2 as pb
from .sstable import varint

_BFLOAT16 = pb.DT_BFLOAT16
RUN_BYTES = 1 << 20  # read at once by read_many, at most (unless one tensor is larger)


class Bundle(BundleIndex):
    """One checkpoint prefix: its index in memory (:class:`.BundleIndex`), its data shards opened on demand."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix + ".index")
        self.prefix = prefix
        self._files: dict[int, tuple[IO[bytes], int]] = {}  # shard -> (open file, size)
        self._dtypes = {code: np.dtype(self.byteorder + stored) for code, (_, stored) in DTYPES.items()}

    def shard_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def unread_shards(self) -> list[str]:
        """Why data files the index refers to cannot be read: missing, or a Git LFS pointer in the real file's place
        (a file small enough to be one is read; no other data file is)."""
        problems = []
        for path in map(self.shard_path, range(self.num_shards)):
            file_size = regular_size(path)
            if file_size is None:
                problems.append(f"{path}: data file missing")
            elif (size := file_pointer_size(path, file_size)) is not None:
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
                stream = open_binary(path)  # kept open for further reads
            except OSError as exc:
                raise InputError(f"{path}: cannot read data file ({exc.strerror})") from None
            self._files[shard] = (stream, size_of(stream))
        return self._files[shard]

    def close(self) -> None:
        """Close the data files (a later read opens them again)."""
        for stream, _ in self._files.values():
            stream.close()
        self._files.clear()

    def _pread(self, shard: int, size: int, start: int) -> bytes:
        stream, _ = self._shard(shard)
        try:
            return pread(stream, size, start) if size else b""
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
            row = self._row(name)
            if row is None:
                values[position] = self.read(name)  # raises as read() does
                continue
            shard, offset, size, crc, code = self._numbers[5 * row : 5 * row + 5]
            shape = self._shape_column[row]
            dtype = self._dtypes.get(code)
            if row in self._undecoded or dtype is None or math.prod(shape) * dtype.itemsize != size:
                values[position] = self.read(name)  # partitioned, strings, anything odd: read() knows what to say
            else:
                pieces.append((shard, offset, position, size, crc, code, shape, dtype))
        pieces.sort()  # by shard and offset (positions differ: nothing further is compared)
        runs = list(_runs(pieces))
        self._prefetch(runs)
        for run in runs:
            self._read_run(run, names, values)
        return values

    def _prefetch(self, runs: list[list[_Piece]]) -> None:
        """Let each data file fetch the runs together (a remote one: in concurrent requests). Any problem is left
        to the reads of the runs, which say what is wrong with each tensor."""
        for shard in sorted({run[0][0] for run in runs}):
            ranges = [(run[0][1], run[-1][1] + run[-1][3]) for run in runs if run[0][0] == shard]
            try:
                prefetch(self._shard(shard)[0], ranges)
            except BncheckError:
                continue

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
            piece = self._slice_entry(name, extents) if len(extents) == len(shape) else None
            if piece is None:
                raise FormatError(f"{self.index_path}: partitioned variable '{name}' is missing a slice {extents}")
            part = self._read_entry(name, piece)
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
