"""Recognise a model file by its content (HDF5 or zip signature), not by its extension.

The first bytes of every model file that is not a checkpoint are read here, so this is also where a Git LFS
pointer standing in for one (``.keras``, ``.h5``, ``.pb``, ``.onnx``...) is recognised and refused.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import FormatError, InputError
from ..model import Checkpoint
from .lfs import SIGNATURE as LFS_SIGNATURE
from .lfs import file_pointer_size, refuse_pointer_file

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# HDF5 allows a user block before the superblock: the signature sits at 0, 512, 1024, 2048, ...
_HDF5_OFFSETS = (512, 1024, 2048, 4096)
_SHOWN_ENTRIES = 5


def file_kind(path: Path) -> str | None:
    """'hdf5', 'zip', 'git-lfs pointer', or None."""
    try:
        with path.open("rb") as stream:
            head = stream.read(max(len(HDF5_SIGNATURE), len(LFS_SIGNATURE)))
            if head.startswith(ZIP_SIGNATURE):
                return "zip"
            if head.startswith(HDF5_SIGNATURE):
                return "hdf5"
            if head.startswith(LFS_SIGNATURE) and file_pointer_size(str(path)) is not None:
                return "git-lfs pointer"
            for offset in _HDF5_OFFSETS:
                stream.seek(offset)
                if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return "hdf5"
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return None


def read_keras_file(path: Path, shown: str) -> Checkpoint | None:
    """A Keras file (``.keras`` zip, Keras 3 ``.weights.h5``, Keras 2 ``.h5``), or None if ``path`` is neither.

    Refused with a message saying what they are: an HDF5 file in neither Keras layout, and a Git LFS pointer."""
    kind = file_kind(path)
    if kind == "git-lfs pointer":
        refuse_pointer_file(str(path), shown)
    if kind == "zip":
        from .keras import read_keras_archive

        return read_keras_archive(str(path), shown)
    if kind != "hdf5":
        return None
    from .keras import is_keras3_weights, read_weights
    from .keras_common import H5_ERRORS, open_h5
    from .keras_h5 import is_keras2_h5, read_keras2_h5

    h5 = open_h5(str(path), shown)
    try:
        if is_keras2_h5(h5):
            return read_keras2_h5(h5, shown)
        if is_keras3_weights(h5):
            return read_weights(h5, shown, None)
        problem = FormatError(
            f"{shown}: not a Keras file: an HDF5 file in neither Keras layout (no layer_names attribute, as Keras 2 "
            f"and tf.keras write, and no vars groups of numbered weights, as Keras 3 writes); {_contents(h5)}"
        )
    except H5_ERRORS as exc:
        problem = FormatError(f"{shown}: damaged HDF5 file ({exc})")
    h5.close()
    raise problem


def _contents(h5: Any) -> str:
    import h5py

    first = islice(h5.items(), _SHOWN_ENTRIES + 1)
    entries = [f"{key}/" if isinstance(item, h5py.Group) else key for key, item in first]
    if not entries:
        return "it is empty"
    more = ", ..." if len(entries) > _SHOWN_ENTRIES else ""
    return f"its top level holds {', '.join(entries[:_SHOWN_ENTRIES])}{more}"


def read_exported_file(path: Path, shown: str) -> Checkpoint | None:
    """An exported graph: an ONNX model (``.onnx``), or a frozen GraphDef (``.pb``, or any file
    whose first bytes parse as a graph node); None if ``path`` is neither."""
    if path.suffix.lower() == ".onnx":
        from .onnx_model import read_onnx

        return read_onnx(path, shown)
    from .frozen import looks_like_graph_def, read_frozen_graph

    if path.suffix.lower() == ".pb" or looks_like_graph_def(path):
        return read_frozen_graph(path, shown)
    return None
