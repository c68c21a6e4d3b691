"""Git LFS pointers: the small text files a clone holds in place of model files when ``git lfs pull`` never ran.

A pointer (git-lfs ``docs/spec.md``) is at most 1024 bytes of ``key value`` lines, the first always
``version https://git-lfs.github.com/spec/v1``, then ``oid sha256:<hex>`` and ``size <bytes of the real file>``.
Only files that small are ever read here, so healthy model files cost nothing.
"""

from __future__ import annotations

from ..errors import InputError
from .files import open_binary, regular_size

MAX_POINTER_BYTES = 1024
SIGNATURE = b"version "  # the first bytes of every pointer: what a sniffer checks before reading the rest
VERSIONS = (b"version https://git-lfs.github.com/spec/", b"version https://hawser.github.com/spec/")  # hawser: pre-1.0


def pointer_size(data: bytes) -> int | None:
    """The size of the real file if ``data`` (a whole file) is a Git LFS pointer, else None."""
    if len(data) > MAX_POINTER_BYTES or not data.startswith(VERSIONS):
        return None
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None
    fields = dict(line.partition(" ")[::2] for line in lines[1:])
    size, oid = fields.get("size", ""), fields.get("oid", "")
    return int(size) if size.isdigit() and oid.startswith("sha256:") else None


def file_pointer_size(path: str, file_size: int | None = None) -> int | None:
    """:func:`pointer_size` of the file at ``path``, read only when it is small enough to be a pointer."""
    try:
        if file_size is None:
            file_size = regular_size(path)
        if file_size is None or file_size > MAX_POINTER_BYTES:
            return None
        with open_binary(path) as stream:
            return pointer_size(stream.read(MAX_POINTER_BYTES + 1))
    except OSError:
        return None


def pointer_message(shown: str, size: int) -> str:
    return f"{shown} is a Git LFS pointer (the real file, {_human(size)}, was never downloaded): run `git lfs pull`"


def refuse_pointer(data: bytes, shown: str) -> None:
    """Raise :class:`InputError` saying so if ``data``, the whole file ``shown``, is a Git LFS pointer."""
    size = pointer_size(data)
    if size is not None:
        raise InputError(pointer_message(shown, size))


def refuse_pointer_file(path: str, shown: str) -> None:
    """:func:`refuse_pointer` for a file on disk (read only when small enough to be a pointer)."""
    size = file_pointer_size(path)
    if size is not None:
        raise InputError(pointer_message(shown, size))


def _human(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    value, units = size / 1000, ["kB", "MB", "GB", "TB"]
    while value >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.1f} {units[0]}"
