"""A read-only, seekable file over a ``pread``: what a zip member's window and a remote file share."""

from __future__ import annotations

import io
from typing import Any


class Positional(io.RawIOBase):
    """A read-only, seekable file of ``size`` bytes over its own ``pread(count, start)`` (for h5py, zipfile)."""

    size: int
    _pos: int = 0

    def pread(self, count: int, start: int) -> bytes:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = offset + (0, self._pos, self.size)[whence]
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = position
        return position

    def readinto(self, buffer: Any) -> int:
        data = self.pread(min(len(buffer), max(self.size - self._pos, 0)), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        data = self.pread(max(self.size - self._pos, 0), self._pos)
        self._pos += len(data)
        return data
