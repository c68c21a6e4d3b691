"""The models that are one file, each a format: how it is recognised and which reader module reads it.

Checkpoints (a prefix and its ``.index``/``.data-*`` files) and SavedModel directories are models of
several files, found by :mod:`.discover` and read in :mod:`bncheck.readers`. Every other format is an
entry of FILE_FORMATS: the one place where a format is wired in. Its reader module is imported only when
a file of the format is read; its ``reads`` check looks at the first bytes only (the signature that
:func:`.sniff.file_kind` found, or the suffix). Entries are tried in order and the first that claims a file
reads it: a narrower claim goes before a wider one (the Keras entry claims every zip, so that a zip of no
known kind is told it is not a .keras archive; a PyTorch zip, recognised by its ``data.pkl`` member, goes
before it).

Adding a format: a reader module ``readers/<name>.py`` with a function ``(path: Path, shown: str) ->
ModelFile``, and its entry here (``tests/test_formats.py`` adds one that way).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..naming import INDEX_SUFFIX

if TYPE_CHECKING:
    from ..facts import ModelFile


@dataclass(frozen=True)
class FileFormat:
    """A model format of one file."""

    described: str  # as the list of what bncheck reads names it
    suffixes: tuple[str, ...]  # the names directory scans count as models of the format without looking inside
    reads: Callable[[Path, str | None], bool]  # (path, signature: "zip", "hdf5" or None) -> a file of the format
    reader: str  # "module:function", the module relative to bncheck.readers: (path: Path, shown: str) -> ModelFile
    scanned: Callable[[Path], bool] | None = None  # for files without those suffixes: whether a scan counts it
    library: str = "bncheck"  # what does the work, as a message says when it does not finish

    def read(self, path: Path, shown: str) -> ModelFile:
        from ..activity import working_in

        working_in(self.library)
        module, _, function = self.reader.partition(":")
        return getattr(importlib.import_module(module, __package__), function)(path, shown)


def _suffix(*suffixes: str) -> Callable[[Path, str | None], bool]:
    return lambda path, signature: path.suffix.lower() in suffixes


def _frozen_graph(path: Path, signature: str | None) -> bool:
    from .frozen import looks_like_graph_def

    return signature is None and (path.suffix.lower() == ".pb" or looks_like_graph_def(path))


def _scanned_graph(path: Path) -> bool:
    """A ``.pb`` file that starts like a GraphDef (a SavedModel's ``saved_model.pb`` is never reached here)."""
    if path.suffix != ".pb" or path.name == "saved_model.pb":
        return False
    from .frozen import looks_like_graph_def

    return looks_like_graph_def(path)


def _torch(path: Path, signature: str | None) -> bool:
    from .torch_file import is_legacy, is_torch_zip

    if signature == "zip":  # (a damaged zip named .pt is a damaged torch file, not a damaged .keras)
        return is_torch_zip(path) or path.suffix.lower() in (".pt", ".pth")
    return path.suffix.lower() in (".pt", ".pth") or (signature is None and is_legacy(path))


def _scanned_torch(path: Path) -> bool:
    """A ``.bin``, ``.ckpt`` or ``.tar`` file that torch.save wrote (by its content)."""
    if path.suffix.lower() not in (".bin", ".ckpt", ".tar"):
        return False
    from .torch_file import is_legacy, is_torch_zip

    return is_legacy(path) or is_torch_zip(path)


def _safetensors(path: Path, signature: str | None) -> bool:
    from .safetensors_file import is_index, looks_like_safetensors

    if path.suffix.lower() == ".safetensors" or is_index(path):
        return True
    return signature is None and looks_like_safetensors(path)


HDF5, PROTOBUF = "the HDF5 library", "the protobuf library"
FILE_FORMATS = (
    FileFormat(
        "PyTorch torch.save files (.pt/.pth/.bin/.ckpt..., zip or legacy)",
        (".pt", ".pth"),
        _torch,
        ".torch_file:read_torch_file",
        _scanned_torch,
        "bncheck's pickle reader",
    ),
    FileFormat(
        "safetensors files and sharded checkpoints (model.safetensors.index.json, pytorch_model.bin.index.json)",
        (".safetensors", f".safetensors{INDEX_SUFFIX}", f".bin{INDEX_SUFFIX}"),
        _safetensors,
        ".safetensors_file:read_safetensors",
    ),
    FileFormat("Keras .keras archives", (".keras",), lambda p, s: s == "zip", ".keras:read_keras_archive", None, HDF5),
    FileFormat(
        "Keras 3 .weights.h5 and Keras 2 / tf.keras HDF5 (.h5/.hdf5) files",
        (".h5", ".hdf5"),
        lambda p, s: s == "hdf5",
        ".sniff:read_keras_h5",
        None,
        HDF5,
    ),
    FileFormat("ONNX .onnx models", (".onnx",), _suffix(".onnx"), ".onnx_model:read_onnx", None, PROTOBUF),
    FileFormat("frozen GraphDef .pb files", (), _frozen_graph, ".frozen:read_frozen_graph", _scanned_graph, PROTOBUF),
)


def scanned_as_model(path: Path) -> bool:
    """Whether a directory scan counts the file ``path`` as a model of one of FILE_FORMATS."""
    if path.name.endswith(tuple(suffix for f in FILE_FORMATS for suffix in f.suffixes)):
        return True
    return any(f.scanned is not None and f.scanned(path) for f in FILE_FORMATS)


def described() -> str:
    """The formats of one file, as the list of what bncheck reads names them."""
    names = [file_format.described for file_format in FILE_FORMATS]
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
