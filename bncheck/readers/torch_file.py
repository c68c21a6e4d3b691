"""Files ``torch.save`` writes, read without torch and without running their pickle.

Two layouts: the **zip** of PyTorch 1.6 and later (``<archive>/data.pkl``, one member
``<archive>/data/<key>`` per storage, ``<archive>/byteorder``), and the **legacy** stream of earlier
versions (five pickles: a magic number, protocol 1001, sys_info, the object, the list of storage keys; then
each storage as an 8-byte element count and its bytes). Either pickle goes through the restricted machine of
:mod:`.pickles`; the file is mapped read-only and a storage's bytes are touched only when a tensor on it is
read. What the objects mean (which is the state dict, which layers are BN) is :mod:`.torch_state`'s.
"""

from __future__ import annotations

import math
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FormatError, InputError
from ..facts import ModelFile
from . import pickles
from .files import Bytes, buffer, is_url, regular_size
from .geometry import MAX_EXTENT
from .pickle_globals import UNREAD, Global, StorageRef, TensorRef, brief
from .torch_state import Loaded, model_of
from .zipmembers import ZIP_ERRORS, member_bytes, member_start, zip_archive

if TYPE_CHECKING:
    from .remote import RemotePath

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy file: this number
LEGACY_PROTOCOL = 1001
_ITEMSIZE = {"bfloat16": 2, "bool": 1}
REMOTE_CRC_BYTES = 1 << 20
_MAX_REPEATED = 1 << 16  # elements a tensor may show beyond its storage's (an expanded tensor, stride 0)


def is_torch_zip(path: Path | RemotePath) -> bool:
    """A zip with a ``<dir>/data.pkl`` member: what ``torch.save`` writes since PyTorch 1.6."""
    try:
        with zip_archive(path) as archive:
            return _pickle_member(archive) is not None
    except ZIP_ERRORS:
        return False


def is_legacy(path: Path | RemotePath) -> bool:
    """A file that starts with the pickled magic number of PyTorch's legacy format."""
    try:
        with path.open("rb") as stream:
            head = stream.read(16)
    except OSError:
        return False
    return head[:1] == b"\x80" and LEGACY_MAGIC.to_bytes(10, "little") in head


def _pickle_member(archive: zipfile.ZipFile) -> str | None:
    for name in archive.namelist():
        directory, _, leaf = name.partition("/")
        if leaf == "data.pkl" and directory:
            return name
    return None


def itemsize(dtype: str) -> int:
    """Bytes per element; 0 for a storage type bncheck does not read."""
    return 0 if dtype.startswith(UNREAD) else _ITEMSIZE.get(dtype) or np.dtype(dtype).itemsize


class _Storages:
    """Where each storage's bytes are in the mapped file, and reading tensors from them. In a zip, a storage's
    start is found (after its member's local header) when a tensor on it is first read."""

    def __init__(self, shown: str, data: Bytes, big_endian: bool) -> None:
        self.shown = shown
        self.data = data
        self.big_endian = big_endian
        self.where: dict[str, tuple[int, int, int]] = {}  # key -> (start, bytes, expected crc32 or -1)
        self.members: dict[str, zipfile.ZipInfo] = {}  # key -> its zip member, until its start is found
        self.crc_bytes: float = math.inf  # storages checked against their CRC-32 up to this size

    def located(self, key: str) -> tuple[int, int, int]:
        info = self.members.pop(key, None)
        if info is not None:
            try:
                start = member_start(self.data[info.header_offset : info.header_offset + 30], info)
            except zipfile.BadZipFile as exc:
                raise FormatError(f"{self.shown}: not a readable torch.save (zip) file ({exc})") from None
            if start + info.file_size > len(self.data):
                raise FormatError(f"{self.shown}: storage {key} lies past the end of the file")
            self.where[key] = (start, info.file_size, info.CRC if info.CRC else -1)
        return self.where[key]

    def read(self, tensor: TensorRef) -> np.ndarray:
        storage = tensor.storage
        if storage.key not in self.where and storage.key not in self.members:
            raise FormatError(f"{self.shown}: storage {storage.key} is not in the file")
        start, size, crc = self.located(storage.key)
        if storage.dtype.startswith(UNREAD):
            kind = storage.dtype.removeprefix(UNREAD)
            raise FormatError(f"{self.shown}: a BN tensor on a {kind}, which bncheck does not read")
        width = itemsize(storage.dtype)
        offset = tensor.offset + (storage.view[0] if storage.view else 0)
        count = size // width
        elements = math.prod(tensor.shape)
        if elements > count + _MAX_REPEATED:  # stride 0 repeats elements; a BN vector never repeats many
            raise FormatError(
                f"{self.shown}: a tensor claims {elements} elements from storage {storage.key} of {count}: refused"
            )
        if elements == 0:
            return np.zeros(tensor.shape, _numpy(storage.dtype))
        last = offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride, strict=True))
        if last >= count:
            raise FormatError(
                f"{self.shown}: a tensor reaches element {last} of storage {storage.key}, which holds {count}"
            )
        if crc >= 0 and size <= self.crc_bytes:
            if zlib.crc32(self.data[start : start + size]) != crc:
                raise FormatError(f"{self.shown}: storage {storage.key} fails its CRC-32 check: the file is damaged")
            self.where[storage.key] = (start, size, -1)  # checked once
        array = self._window(storage.dtype, start + offset * width, last + 1 - offset, tensor, width)
        if storage.dtype == "bfloat16":
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))

    def _window(self, dtype: str, start: int, count: int, tensor: TensorRef, width: int) -> np.ndarray:
        """A copy of the tensor's elements: no view on the map outlives this call, so it can always close."""
        raw = np.frombuffer(self.data[start : start + count * width], _raw(dtype, self.big_endian), count)
        try:
            return np.lib.stride_tricks.as_strided(raw, tensor.shape, tuple(s * width for s in tensor.stride)).copy()
        except (ValueError, OverflowError, MemoryError) as exc:
            raise FormatError(f"{self.shown}: a tensor of shape {list(tensor.shape)} cannot be read ({exc})") from None
        finally:
            del raw


def _raw(dtype: str, big_endian: bool) -> np.dtype:
    base = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    return base.newbyteorder(">") if big_endian and base.itemsize > 1 else base


def _numpy(dtype: str) -> np.dtype:
    return np.dtype("float32" if dtype == "bfloat16" else dtype)


def _map(path: Path | RemotePath, shown: str) -> Bytes:
    try:
        if regular_size(path) == 0:
            raise FormatError(f"{shown}: the file is empty")
        return buffer(path)
    except OSError as exc:
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None


def _storage_ref(pid: Any, shown: str, legacy: bool) -> tuple[StorageRef, int | None]:
    """The storage a persistent id names, and its element count (None: not said)."""
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
        raise FormatError(f"{shown}: the pickle names a persistent object ({brief(pid)}), not a storage")
    kind, key, numel = pid[1], pid[2], pid[4]
    if not (isinstance(kind, tuple) and kind[:1] == ("storage",)):
        what = kind if isinstance(kind, Global | str) else type(kind).__name__
        raise FormatError(f"{shown}: a storage of type {what}, which bncheck does not read")
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise FormatError(f"{shown}: a storage with key {brief(key)} and size {brief(numel)}")
    view = None
    if legacy and len(pid) > 5 and pid[5] is not None:
        meta = pid[5]
        if not (
            isinstance(meta, tuple)
            and len(meta) == 3
            and all(isinstance(v, int) and 0 <= v < MAX_EXTENT for v in meta[1:])
        ):
            raise FormatError(f"{shown}: a storage view described as {brief(meta)}")
        view = (meta[1], meta[2])
    return StorageRef(key, kind[1], numel, view), numel


def _loader(shown: str, legacy: bool, seen: dict[str, StorageRef]) -> Callable[[Any], StorageRef]:
    def persistent_load(pid: Any) -> StorageRef:
        storage, _ = _storage_ref(pid, shown, legacy)
        known = seen.setdefault(storage.key, storage)
        if known.dtype != storage.dtype and known.view is None and storage.view is None:
            raise FormatError(f"{shown}: storage {storage.key} is named with two element types")
        return storage

    return persistent_load


def read_torch_zip(path: Path | RemotePath, shown: str) -> Loaded:
    """The object of a ``torch.save`` zip, its storages mapped for reading."""
    try:
        with zip_archive(path) as archive:
            name = _pickle_member(archive)
            if name is None:
                raise FormatError(f"{shown}: a zip without a data.pkl member: not a torch.save file")
            root = name.rpartition("/")[0]
            infos = {info.filename: info for info in archive.infolist()}
            data_pkl = member_bytes(archive, name, shown)
            order = member_bytes(archive, f"{root}/byteorder", shown) if f"{root}/byteorder" in infos else b"little"
            scripted = f"{root}/constants.pkl" in infos or any(n.startswith(f"{root}/code/") for n in infos)
    except ZIP_ERRORS as exc:
        raise FormatError(f"{shown}: not a readable torch.save (zip) file ({exc})") from None
    if order not in (b"little", b"big"):
        raise FormatError(f"{shown}: its byteorder record says {order[:20]!r}, neither little nor big")
    seen: dict[str, StorageRef] = {}
    loaded, _ = pickles.load(data_pkl, 0, _loader(shown, False, seen))
    for key, storage in seen.items():
        info = infos.get(f"{root}/data/{key}")
        if info is None:
            raise FormatError(f"{shown}: storage {key} has no member {root}/data/{key}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise FormatError(f"{shown}: storage {key} is compressed, which torch.save never does")
        if info.file_size < storage.numel * itemsize(storage.dtype):
            raise FormatError(
                f"{shown}: storage {key} holds {info.file_size} bytes, not the "
                f"{storage.numel * itemsize(storage.dtype)} of its {storage.numel} elements"
            )
    data = _map(path, shown)
    storages = _Storages(shown, data, order == b"big")
    storages.members = {key: infos[f"{root}/data/{key}"] for key in seen}
    if is_url(path):  # a remote storage is checked when read, and its CRC only when small (else read whole)
        storages.crc_bytes = REMOTE_CRC_BYTES
    else:  # on disk every storage's local header is checked now (cheap)
        try:
            for key in seen:
                storages.located(key)
        except BaseException:
            data.close()
            raise
    notes = ("a TorchScript archive (torch.jit.save): its data.pkl read as data, its code never run",) * scripted
    return Loaded(loaded.value, loaded.unknown, storages.read, "PyTorch torch.save (zip)", data.close, notes)


def read_legacy(path: Path | RemotePath, shown: str) -> Loaded:
    """The object of a file in PyTorch's legacy format (before 1.6), its storages mapped for reading."""
    data = _map(path, shown)
    try:
        return _legacy(data, shown)
    except BaseException:
        data.close()
        raise


def _legacy(data: Bytes, shown: str) -> Loaded:
    def nothing(pid: Any) -> Any:
        raise FormatError(f"{shown}: a persistent object in the header of a legacy torch file")

    magic, pos = pickles.load(data, 0, nothing)
    if magic.value != LEGACY_MAGIC:
        raise FormatError(f"{shown}: not a legacy torch file (its magic number is wrong)")
    protocol, pos = pickles.load(data, pos, nothing)
    if protocol.value != LEGACY_PROTOCOL:
        raise FormatError(f"{shown}: legacy torch protocol {brief(protocol.value)}, not {LEGACY_PROTOCOL}")
    sys_info, pos = pickles.load(data, pos, nothing)
    info = sys_info.value if isinstance(sys_info.value, dict) else {}
    seen: dict[str, StorageRef] = {}
    loaded, pos = pickles.load(data, pos, _loader(shown, True, seen))
    keys, pos = pickles.load(data, pos, nothing)
    if not isinstance(keys.value, list) or not all(isinstance(k, str) for k in keys.value):
        raise FormatError(f"{shown}: the storage key list of a legacy torch file is not a list of names")
    big_endian = info.get("little_endian", True) is False
    storages = _Storages(shown, data, big_endian)
    for key in keys.value:
        if key not in seen:
            raise FormatError(f"{shown}: storage {key} is listed but no tensor names it")
        if seen[key].dtype.startswith(UNREAD):  # its size in bytes is unknown: the storages after it cannot be found
            raise FormatError(
                f"{shown}: storage {key} is a {seen[key].dtype.removeprefix(UNREAD)}, which bncheck does not read"
            )
        if pos + 8 > len(data):
            raise FormatError(f"{shown}: the file ends before storage {key}")
        count = int.from_bytes(data[pos : pos + 8], "big" if big_endian else "little", signed=True)
        size = count * itemsize(seen[key].dtype)
        if count < 0 or pos + 8 + size > len(data):
            raise FormatError(f"{shown}: storage {key} claims {count} elements, past the end of the file")
        storages.where[key] = (pos + 8, size, -1)
        pos += 8 + size
    return Loaded(loaded.value, loaded.unknown, storages.read, "PyTorch torch.save (legacy, before 1.6)", data.close)


def read_torch_file(path: Path | RemotePath, shown: str) -> ModelFile:
    """A ``torch.save`` file of either layout, as a :class:`ModelFile` of its state dict's BN layers."""
    with path.open("rb") as stream:
        head = stream.read(4)
        stream.seek(0)
        tar = head != b"PK\x03\x04" and not is_legacy(path) and tarfile.is_tarfile(stream)
    if head == b"PK\x03\x04":
        loaded = read_torch_zip(path, shown)
    elif not tar:
        loaded = read_legacy(path, shown)
    else:
        raise FormatError(f"{shown}: a tar archive: PyTorch's tar format (before 0.4) is not read")
    try:
        return model_of(loaded, path, shown)
    except BaseException:
        loaded.close()
        raise
