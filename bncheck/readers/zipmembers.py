"""Members of zip archives (Keras ``.keras``, PyTorch ``torch.save`` files), read without trusting the
sizes they claim: small members in memory, checked against their entry; a stored (uncompressed) member in
place, as a window on the archive."""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import FormatError
from .files import is_url, location, open_binary, pread
from .positional import Positional

if TYPE_CHECKING:
    from .remote import RemotePath

ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, NotImplementedError, EOFError, ValueError)
# (ValueError: zipfile decodes a damaged member name as UTF-8 and lets UnicodeDecodeError out)

MAX_MEMBER_BYTES = 16 * 1024**3
MAX_RATIO = 200  # weights barely compress; a member that inflates more than this is a zip bomb


def member_bytes(archive: zipfile.ZipFile, name: str, shown: str) -> bytes:
    """One member, read in memory only if its declared size is plausible, and checked against it."""
    info = archive.getinfo(name)
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MAX_MEMBER_BYTES or (info.file_size > 1024**2 and ratio > MAX_RATIO):
        raise FormatError(
            f"{shown}: {name} claims {info.file_size} bytes from {info.compress_size} compressed (a zip bomb?); refused"
        )
    with archive.open(info) as stream:
        data = stream.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise FormatError(f"{shown}: {name} holds {len(data)} bytes, not the {info.file_size} its entry claims")
    return data


class Window(Positional):
    """Read-only, seekable view of ``size`` bytes at ``start`` of a file, read on demand (for h5py)."""

    def __init__(self, path: str, start: int, size: int) -> None:
        super().__init__()
        self._file = open_binary(path)  # closed with the window
        self._start, self.size = start, size

    def pread(self, count: int, start: int) -> bytes:
        count = min(count, self.size - start)
        return pread(self._file, count, self._start + start) if count > 0 else b""

    def close(self) -> None:
        self._file.close()
        super().close()


@contextmanager
def zip_archive(path: str | Path | RemotePath) -> Iterator[zipfile.ZipFile]:
    """The zip at ``path`` open (a remote one read by range: its central directory at the end, then the
    members asked for)."""
    target = location(path)
    if isinstance(target, Path):
        with zipfile.ZipFile(target) as archive:
            yield archive
    else:
        with target.open("rb") as stream, zipfile.ZipFile(stream) as archive:
            yield archive


def data_start(archive: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where the bytes of member ``info`` start in the open ``archive``: after its local header."""
    archive.seek(info.header_offset)
    return member_start(archive.read(30), info)


def member_start(header: bytes, info: zipfile.ZipInfo) -> int:
    """Where the bytes of member ``info`` start, from the first 30 bytes of its local ``header``."""
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local file header of {info.filename}")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def stored_member(path: str, info: zipfile.ZipInfo, shown: str) -> Window | None:
    """An uncompressed member as a window on the archive, its CRC-32 checked as zipfile would (streamed,
    so memory does not grow with the file; not in a remote archive, which that would download whole); None for
    a compressed or encrypted member (read in memory)."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with open_binary(path) as archive:
        start = data_start(archive, info)
        if is_url(path):
            return Window(path, start, info.file_size)
        archive.seek(start)
        crc, left, chunk = 0, info.file_size, bytearray(1 << 20)
        while left > 0:
            count = archive.readinto(memoryview(chunk)[: min(left, len(chunk))])
            if not count:
                break
            crc = zlib.crc32(memoryview(chunk)[:count], crc)
            left -= count
    if left:
        raise FormatError(
            f"{shown}: {info.filename} holds {info.file_size - left} bytes, not the {info.file_size} its entry claims"
        )
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    return Window(path, start, info.file_size)
