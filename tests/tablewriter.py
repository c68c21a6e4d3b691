"""Re-write the entries of a real checkpoint index as another valid table (test-only).

Used to make transformed copies of TensorFlow-written files that today's writers no
longer produce (snappy-compressed blocks) or cannot produce on this machine
(big-endian bundles). The entries themselves always come from a real file.
"""

from __future__ import annotations

import struct

import cramjam

from bncheck.readers.crc import crc32c, mask
from bncheck.readers.sstable import MAGIC


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)  # one restart point at offset 0


def write_table(entries: list[tuple[bytes, bytes]], snappy: bool = False, block_entries: int = 50) -> bytes:
    out = bytearray()

    def emit(block: bytes) -> bytes:
        kind = 0
        if snappy:
            block, kind = bytes(cramjam.snappy.compress_raw(block)), 1
        handle = _varint(len(out)) + _varint(len(block))
        trailer = bytes([kind])
        out.extend(block + trailer + struct.pack("<I", mask(crc32c(block + trailer))))
        return handle

    index = []
    for start in range(0, len(entries), block_entries):
        chunk = entries[start : start + block_entries]
        index.append((chunk[-1][0], emit(_block(chunk))))
    meta_handle = emit(struct.pack("<II", 0, 1))  # an empty metaindex block
    index_handle = emit(_block(index))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    return bytes(out + footer)
