"""Recognise a model file by its content (HDF5 or zip signature), not by its extension."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError, InputError
from ..model import Checkpoint

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# HDF5 allows a user block before the superblock: the signature sits at 0, 512, 1024, 2048, ...
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


def file_kind(path: Path) -> str | None:
    """'hdf5', 'zip', or None."""
    try:
        with path.open("rb") as stream:
            head = stream.read(len(ZIP_SIGNATURE))
            if head == ZIP_SIGNATURE:
                return "zip"
            for offset in _HDF5_OFFSETS:
                stream.seek(offset)
                if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return "hdf5"
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return None


def read_keras_file(path: Path, shown: str) -> Checkpoint | None:
    """A Keras file (``.keras`` zip, Keras 3 ``.weights.h5``, Keras 2 ``.h5``), or None if ``path`` is neither."""
    kind = file_kind(path)
    if kind == "zip":
        from .keras import read_keras_archive

        return read_keras_archive(str(path), shown)
    if kind != "hdf5":
        return None
    from .keras import CONTAINERS, read_weights
    from .keras_common import H5_ERRORS, open_h5
    from .keras_h5 import is_keras2_h5, read_keras2_h5

    h5 = open_h5(str(path), shown)
    try:
        if is_keras2_h5(h5):
            return read_keras2_h5(h5, shown)
        is_keras3 = any(name in h5 for name in (*CONTAINERS, "vars"))
    except H5_ERRORS as exc:
        raise FormatError(f"{shown}: damaged HDF5 file ({exc})") from None
    if is_keras3:
        return read_weights(h5, shown, None)
    raise FormatError(
        f"{shown}: an HDF5 file without Keras weights (no layer_names attribute, model_weights, layers/ or vars/ group)"
    )


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
