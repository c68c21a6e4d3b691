"""Reader of the LevelDB-style sorted table behind a checkpoint's ``.index`` file.

Layout (TensorFlow's ``core/lib/io/table``, a LevelDB port): data blocks, an index
block whose values are handles of the data blocks, and a 48-byte footer holding the
metaindex and index handles and the magic number. Every block is followed by one
compression byte (0 none, 1 snappy) and the masked CRC-32C of block + that byte.
A block holds prefix-compressed entries and ends in a restart array.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ..errors import FormatError, IntegrityError
from .crc import crc32c, mask

FOOTER_SIZE = 48
MAGIC = 0xDB4775248B80FB57
_NO_COMPRESSION, _SNAPPY = 0, 1


def varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode one varint at ``pos``; return (value, next position)."""
    result = shift = 0
    while pos < end and shift < 64:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("bad varint")


class Table:
    """All entries of one table file, read once into memory (index files are small)."""

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self._name = name

    def _fail(self, what: str) -> FormatError:
        return FormatError(f"{self._name}: not a valid checkpoint index ({what})")

    def _handle(self, buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
        offset, pos = varint(buf, pos, end)
        size, pos = varint(buf, pos, end)
        return offset, size, pos

    def _block(self, offset: int, size: int) -> bytes:
        data = self._data
        if offset + size + 5 > len(data) - FOOTER_SIZE:
            raise self._fail(f"block at {offset} of {size} bytes runs past the end of the file")
        block = data[offset : offset + size]
        kind = data[offset + size]
        (stored,) = struct.unpack_from("<I", data, offset + size + 1)
        if mask(crc32c(data[offset : offset + size + 1])) != stored:
            raise IntegrityError(f"{self._name}: checksum mismatch in index block at byte {offset}")
        if kind == _NO_COMPRESSION:
            return block
        if kind == _SNAPPY:
            return _snappy_decompress(block, self._name)
        raise self._fail(f"unknown block compression {kind}")

    def _entries(self, block: bytes) -> Iterator[tuple[bytes, bytes]]:
        if len(block) < 4:
            raise self._fail("block too short")
        (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
        end = len(block) - 4 - 4 * restarts
        if restarts == 0 or end < 0:
            raise self._fail("bad restart array")
        pos, key = 0, b""
        while pos < end:
            if pos + 3 <= end and block[pos] < 0x80 and block[pos + 1] < 0x80 and block[pos + 2] < 0x80:
                shared, unshared, length = block[pos], block[pos + 1], block[pos + 2]  # the usual one byte each
                pos += 3
            else:
                shared, pos = varint(block, pos, end)
                unshared, pos = varint(block, pos, end)
                length, pos = varint(block, pos, end)
            if shared > len(key) or pos + unshared + length > end:
                raise self._fail("entry runs past its block")
            key = key[:shared] + block[pos : pos + unshared]
            pos += unshared
            yield key, block[pos : pos + length]
            pos += length

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) of every entry in key order."""
        try:
            for offset, size in self.block_handles():
                yield from self._entries(self._block(offset, size))
        except ValueError as exc:
            raise self._fail(str(exc)) from None

    def block_handles(self) -> list[tuple[int, int]]:
        """(offset, size) of every data block, from the footer's index block."""
        data = self._data
        if len(data) < FOOTER_SIZE:
            raise self._fail(f"{len(data)} bytes, shorter than the {FOOTER_SIZE}-byte footer")
        footer = len(data) - FOOTER_SIZE
        (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
        if magic != MAGIC:
            raise self._fail("wrong magic number in the footer")
        try:
            _, _, pos = self._handle(data, footer, len(data) - 8)
            index_offset, index_size, _ = self._handle(data, pos, len(data) - 8)
            return [self._handle(h, 0, len(h))[:2] for _, h in self._entries(self._block(index_offset, index_size))]
        except ValueError as exc:
            raise self._fail(str(exc)) from None


def _snappy_decompress(block: bytes, name: str) -> bytes:
    """Snappy-compressed blocks come only from old writers; cramjam decodes them."""
    import cramjam

    try:
        claimed, _ = varint(block, 0, len(block))
    except ValueError:
        claimed = -1
    if not 0 <= claimed <= 64 * len(block) + 64:  # snappy cannot expand more than ~32x
        raise FormatError(f"{name}: corrupt snappy-compressed index block (bad length)")
    try:
        return bytes(cramjam.snappy.decompress_raw(block))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise FormatError(f"{name}: corrupt snappy-compressed index block ({exc})") from None
