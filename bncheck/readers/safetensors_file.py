"""safetensors files and sharded checkpoints (an ``*.index.json`` naming the file of each tensor).

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's dtype, shape and
``data_offsets`` in the byte buffer after it; ``__metadata__``) and the buffer. The header is checked as the
format's own loader checks it: at most 100 MB, UTF-8 JSON, no key twice, offsets that tile the buffer exactly
and agree with dtype and shape. A sharded checkpoint (``model.safetensors.index.json``,
``pytorch_model.bin.index.json``) is read through its ``weight_map``: only the shards that hold BN tensors
are opened, and none outside the index's directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FormatError, InputError
from ..facts import Framework, ModelFile
from ..naming import INDEX_SUFFIX
from .files import buffer, size_of
from .geometry import geometry_problem
from .torch_state import StateDict, Tensor, state_model

if TYPE_CHECKING:
    from .remote import RemotePath

MAX_HEADER = 100_000_000  # bytes: the limit of the safetensors format itself
DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
_SIZES = {"F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1}
FRAMEWORKS = {"pt": Framework.TORCH, "tf": Framework.TF2}


def is_index(path: Path) -> bool:
    return path.name.endswith(INDEX_SUFFIX)


def looks_like_safetensors(path: Path) -> bool:
    """An 8-byte length that fits the file, then ``{"``: a safetensors header."""
    try:
        with path.open("rb") as stream:
            head = stream.read(10)
            size = size_of(stream)
    except OSError:
        return False
    return len(head) == 10 and head[8:10] == b'{"' and 8 + int.from_bytes(head[:8], "little") <= size


class _File:
    """One safetensors file: its header, checked, and its buffer mapped read-only (a remote one: read by range,
    the header first)."""

    def __init__(self, path: Path | RemotePath, shown: str) -> None:
        self.shown = shown
        try:
            with path.open("rb") as stream:
                size = size_of(stream)
                if size < 8:
                    raise FormatError(f"{shown}: {size} bytes: too short for a safetensors file")
                length = int.from_bytes(stream.read(8), "little")
                if length > MAX_HEADER or 8 + length > size:
                    raise FormatError(
                        f"{shown}: its header claims {length} bytes (the file has {size}; the format allows "
                        f"{MAX_HEADER}): not a safetensors file, or a damaged one"
                    )
                header = stream.read(length)
            self.data = buffer(path)
        except OSError as exc:
            raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
        try:
            self.tensors, self.offsets, self.metadata = _parse(header, size - 8 - length, shown)
        except BaseException:
            self.data.close()
            raise
        self.start = 8 + length

    def read(self, key: str) -> np.ndarray:
        tensor, (begin, _) = self.tensors[key], self.offsets[key]
        if tensor.dtype not in DTYPES.values():
            raise FormatError(f"{self.shown}: tensor {key} is {tensor.dtype}, which bncheck does not read")
        raw = "uint16" if tensor.dtype == "bfloat16" else tensor.dtype
        count = math.prod(tensor.shape)
        dtype = np.dtype(raw).newbyteorder("<")
        start = self.start + begin
        array = np.frombuffer(self.data[start : start + count * dtype.itemsize], dtype, count)
        array = array.reshape(tensor.shape)
        if tensor.dtype == "bfloat16":
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(array.dtype.newbyteorder("="))  # a copy, in native order: the map can close


def _parse(header: bytes, buffer: int, shown: str) -> tuple[dict[str, Tensor], dict[str, tuple[int, int]], dict]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen = [key for key, _ in pairs]
            twice = next(key for key in seen if seen.count(key) > 1)
            raise FormatError(f"{shown}: its header names tensor {twice!r} twice")
        return result

    try:
        parsed = json.loads(header.decode("utf-8"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        what = type(exc).__name__
        raise FormatError(f"{shown}: its header is not UTF-8 JSON ({what}): not a safetensors file") from None
    if not isinstance(parsed, dict):
        raise FormatError(f"{shown}: its header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise FormatError(f"{shown}: its __metadata__ is not an object")
    tensors: dict[str, Tensor] = {}
    offsets: dict[str, tuple[int, int]] = {}
    for key, entry in parsed.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise FormatError(f"{shown}: tensor {key!r} lacks dtype, shape or data_offsets")
        code, shape, span = entry["dtype"], entry["shape"], entry["data_offsets"]
        if code not in DTYPES and code not in _SIZES:
            raise FormatError(f"{shown}: tensor {key!r} has the unknown dtype {str(code)[:20]!r}")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise FormatError(f"{shown}: tensor {key!r} has the shape {str(shape)[:40]}")
        if problem := geometry_problem(shape):
            raise FormatError(f"{shown}: tensor {key!r} claims {problem}")
        if not (isinstance(span, list) and len(span) == 2 and all(type(n) is int for n in span)) or span[0] > span[1]:
            raise FormatError(f"{shown}: tensor {key!r} has the data_offsets {str(span)[:40]}")
        width = _SIZES.get(code) or np.dtype("uint16" if code == "BF16" else DTYPES[code]).itemsize
        if span[1] - span[0] != math.prod(shape) * width:
            raise FormatError(
                f"{shown}: tensor {key!r} spans {span[1] - span[0]} bytes, not the {math.prod(shape) * width} of "
                f"its {code} shape {shape}"
            )
        tensors[key] = Tensor(DTYPES.get(code, code.lower()), tuple(shape))
        offsets[key] = (span[0], span[1])
    end = 0
    for key, (begin, stop) in sorted(offsets.items(), key=lambda item: item[1]):
        if begin != end:
            raise FormatError(
                f"{shown}: tensor {key!r} starts at byte {begin} of the buffer, not at {end}: "
                f"{'overlapping' if begin < end else 'a gap between'} tensors"
            )
        end = stop
    if end != buffer:
        raise FormatError(f"{shown}: its tensors cover {end} bytes of a {buffer}-byte buffer")
    return tensors, offsets, metadata


def read_safetensors(path: Path, shown: str) -> ModelFile:
    """A safetensors file, or a sharded checkpoint through its index."""
    if is_index(path):
        return _read_index(path, shown)
    file = _File(path, shown)
    framework = FRAMEWORKS.get(str(file.metadata.get("format")), Framework.TORCH)
    state = StateDict(file.tensors, file.read, framework)
    try:
        return state_model(state, shown, "safetensors", str(path), file.data.close)
    except BaseException:
        file.data.close()
        raise


def index_shards(path: Path, shown: str | None = None) -> dict[str, str]:
    """The ``weight_map`` of an index: tensor key -> shard file name (checked to stay in its directory)."""
    shown = shown or str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    try:
        index = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError(f"{shown}: not a JSON index of a sharded checkpoint") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise FormatError(f"{shown}: a JSON file without a weight_map of tensor names to shard files")
    for shard in set(weight_map.values()):
        # (a URL would decode %2e%2e to '..', and take '?', '#' and 'scheme://' as URL syntax)
        if Path(shard).is_absolute() or ".." in Path(shard).parts or any(c in shard for c in "\\%?#:"):
            raise FormatError(f"{shown}: names the shard {shard!r}, outside its directory: refused")
    return weight_map


def _read_index(path: Path, shown: str) -> ModelFile:
    weight_map = index_shards(path, shown)
    layers = {key.rpartition(".")[0] for key in weight_map if key.rpartition(".")[2] in ("running_mean", "running_var")}
    wanted = {key: shard for key, shard in weight_map.items() if key.rpartition(".")[0] in layers}
    tensors: dict[str, Tensor] = {}
    readers: dict[str, Callable[[str], np.ndarray]] = {}
    closers: list[Callable[[], None]] = []

    def close() -> None:
        for closer in closers:
            closer()

    framework = Framework.TORCH
    try:
        for shard in sorted(set(wanted.values())):
            shard_path = path.parent / shard
            if not shard_path.is_file():
                raise InputError(f"{shown}: its shard {shard} is missing")
            read, shard_tensors, close_shard, fmt = _open_shard(shard_path, f"{shown}: shard {shard}")
            closers.append(close_shard)
            framework = fmt or framework
            for key, tensor_shard in wanted.items():
                if tensor_shard != shard:
                    continue
                if key not in shard_tensors:
                    raise FormatError(f"{shown}: the index puts {key} in {shard}, which does not hold it")
                tensors[key], readers[key] = shard_tensors[key], read
        keys = tuple(weight_map)
        state = StateDict(tensors, lambda key: readers[key](key), framework, keys=keys)
        kind = "safetensors" if path.name.endswith(".safetensors.index.json") else "PyTorch .bin"
        shards = len(set(weight_map.values()))
        return state_model(state, shown, f"sharded {kind} checkpoint ({shards} shards)", str(path), close)
    except BaseException:
        close()
        raise


def _open_shard(
    path: Path, shown: str
) -> tuple[Callable[[str], np.ndarray], dict[str, Tensor], Callable[[], None], Framework | None]:
    if path.suffix == ".safetensors":
        file = _File(path, shown)
        return file.read, file.tensors, file.data.close, FRAMEWORKS.get(str(file.metadata.get("format")))
    from .torch_file import is_torch_zip, read_legacy, read_torch_zip
    from .torch_state import find_state

    loaded = read_torch_zip(path, shown) if is_torch_zip(path) else read_legacy(path, shown)
    found = find_state(loaded.value)
    if found is None:
        loaded.close()
        raise FormatError(f"{shown}: holds no state dict")
    refs = found[1]
    tensors = {key: Tensor(ref.dtype, ref.shape) for key, ref in refs.items()}
    return (lambda key: loaded.read(refs[key])), tensors, loaded.close, Framework.TORCH
