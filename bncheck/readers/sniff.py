"""Recognise a model file by its content (HDF5 or zip signature) before its extension, and read it.

The first bytes of every model file that is not a checkpoint are read here, so this is also where a Git LFS
pointer standing in for one (``.keras``, ``.h5``, ``.pb``, ``.onnx``...) is recognised and refused.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import FormatError, InputError
from ..facts import ModelFile
from . import formats
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


def read_model_file(path: Path, shown: str) -> ModelFile | None:
    """The model in ``path`` if it is one of the formats of one file (:mod:`.formats`), else None.

    A Git LFS pointer standing in for one is refused, saying what it is."""
    signature = file_kind(path)
    if signature == "git-lfs pointer":
        refuse_pointer_file(str(path), shown)
    for file_format in formats.FILE_FORMATS:
        if file_format.reads(path, signature):
            return file_format.read(path, shown)
    return None


def read_keras_h5(path: Path, shown: str) -> ModelFile:
    """A Keras 3 ``.weights.h5`` or Keras 2 ``.h5``; an HDF5 file in neither layout is refused, saying so."""
    from .keras import is_keras3_weights, read_weights
    from .keras_common import H5_ERRORS, open_h5
    from .keras_h5 import is_keras2_h5, read_keras2_h5

    h5 = open_h5(str(path) if isinstance(path, Path) else path.open("rb"), shown)  # remote: read by range
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
