"""The files of a model, wherever they are: every reader opens, sizes and lists them through here.

A local path stays a :class:`pathlib.Path` and its files are read as before (``os.pread``, read-only maps);
a URL (``s3://``, ``https://``...) becomes a :class:`.remote.RemotePath` whose files are read by range.
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..stores import scheme_of

if TYPE_CHECKING:
    from .remote import RangeFile, RemotePath


def is_url(path: str | Path | RemotePath) -> bool:
    """Whether ``path`` names a remote file (a URL with a scheme bncheck reads by range)."""
    return scheme_of(str(path)) is not None


def location(path: str | Path | RemotePath) -> Any:
    """``path`` as an object with the :class:`pathlib.Path` methods readers use: a Path, or a RemotePath."""
    if not isinstance(path, str):
        return path
    if is_url(path):
        from .remote import RemotePath

        return RemotePath(path)
    return Path(path)


def open_binary(path: str | Path | RemotePath) -> IO[bytes]:
    """``path`` open for reading bytes, unbuffered (a remote file: by range)."""
    target = location(path)
    if isinstance(target, Path):
        return open(target, "rb", buffering=0)
    return target.open("rb")


def read_bytes(path: str | Path | RemotePath) -> bytes:
    return location(path).read_bytes()


def pread(stream: IO[bytes], count: int, start: int) -> bytes:
    """The ``count`` bytes at ``start`` of an open file (:func:`open_binary`), without moving its position."""
    reader = getattr(stream, "pread", None)
    return reader(count, start) if reader is not None else os.pread(stream.fileno(), count, start)


def prefetch(stream: IO[bytes], ranges: list[tuple[int, int]]) -> None:
    """Let an open file fetch the ``(start, end)`` ranges it will be asked for, together (a remote file: in
    concurrent requests; a local one needs nothing)."""
    fetch = getattr(stream, "prefetch", None)
    if fetch is not None:
        fetch(ranges)


def size_of(stream: IO[bytes]) -> int:
    """The size of an open file (:func:`open_binary`)."""
    size = getattr(stream, "size", None)
    return size if isinstance(size, int) else os.fstat(stream.fileno()).st_size


def regular_size(path: str | Path | RemotePath) -> int | None:
    """The size of the regular file at ``path``; None if there is none (missing, a directory, a device...)."""
    target = location(path)
    try:
        info = os.stat(target) if isinstance(target, Path) else target.stat()
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def buffer(path: str | Path | RemotePath) -> mmap.mmap | RemoteBuffer:
    """The whole file at ``path`` as bytes to slice: a read-only map of a local file (``ValueError`` if it is
    empty), a :class:`RemoteBuffer` of a remote one."""
    target = location(path)
    if isinstance(target, Path):
        with open(target, "rb") as stream:
            return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    return RemoteBuffer(target.open("rb"))


class RemoteBuffer:
    """A remote file as a map of it answers: ``data[a:b]``, ``data[i]``, ``len(data)``, ``find``, ``close``."""

    def __init__(self, stream: RangeFile) -> None:
        self._stream = stream
        self._size = stream.size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, int):
            index = key + self._size if key < 0 else key
            if not 0 <= index < self._size:
                raise IndexError("index out of range")
            return self._stream.pread(1, index)[0]
        start, stop, step = key.indices(self._size)
        if step != 1:
            raise ValueError("a remote file is sliced with step 1")
        return self._stream.pread(max(stop - start, 0), start)

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        end = self._size if end is None else min(end, self._size)
        found = self[start:end].find(sub)
        return found + start if found >= 0 else -1

    def close(self) -> None:
        self._stream.close()


Bytes = bytes | mmap.mmap | RemoteBuffer  # what a reader slices: bytes in memory, a mapped or a remote file
