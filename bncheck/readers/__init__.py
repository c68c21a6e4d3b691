"""Turn a path a user typed into a :class:`Checkpoint`, whatever it points at.

Accepted: a checkpoint prefix (``model.ckpt``, ``ckpt-60``), any of its files
(``.index``, ``.data-NNNNN-of-NNNNN``, ``.meta``), a directory with a ``checkpoint``
state file (its latest checkpoint), a directory holding exactly one prefix, and a
SavedModel directory (its ``variables/`` bundle), a frozen GraphDef (``.pb``) and an
ONNX model (``.onnx``).
"""

from __future__ import annotations

import codecs
import glob
import os
import re
from pathlib import Path

from ..errors import InputError
from ..model import Checkpoint
from .sniff import read_exported_file, read_keras_file

EXPECTED = (
    "bncheck reads TensorFlow checkpoints (a prefix such as model.ckpt, one of its "
    ".index/.data-*/.meta files, a directory with a 'checkpoint' file), SavedModel directories, "
    "Keras .keras archives, Keras 3 .weights.h5 and Keras 2 / tf.keras HDF5 (.h5/.hdf5) files, "
    "frozen GraphDef .pb files and ONNX .onnx models"
)
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_STATE_LINE = re.compile(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def read_checkpoint(prefix: str, shown: str, format_name: str | None = None) -> Checkpoint:
    """:func:`.tfcheckpoint.read_checkpoint`, imported when a checkpoint is read (it needs protobuf)."""
    from .tfcheckpoint import read_checkpoint as read

    return read(prefix, shown, format_name)


def open_model(path: str) -> Checkpoint:
    """Read the model at ``path``; raise :class:`InputError` saying what was found instead."""
    target = Path(path)
    try:
        if target.is_dir():
            return _open_directory(target, path)
        if target.is_file():
            if target.name == "saved_model.pb":
                return _open_directory(target.parent, path)
            keras = None if _is_checkpoint_file(path) else read_keras_file(target, path)
            exported = None if keras or _is_checkpoint_file(path) else read_exported_file(target, path)
            return keras or exported or read_checkpoint(_prefix_of_file(target), path)
        if Path(path + ".index").is_file():
            return read_checkpoint(path, path)
        if Path(path + ".meta").is_file() or any(target.parent.glob(glob.escape(target.name) + ".data-*")):
            raise InputError(f"{path}: its checkpoint index {target.name}.index is missing")
    except OSError as exc:  # e.g. a symlink loop or a permission problem while probing
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if os.path.islink(path):
        raise InputError(f"{path}: broken symbolic link")
    raise InputError(f"{path}: no such file, directory or checkpoint prefix{_near_misses(target)}")


def _is_checkpoint_file(name: str) -> bool:
    return name.endswith((".index", ".meta")) or bool(_DATA_SUFFIX.search(name))


def _prefix_of_file(file: Path) -> str:
    name = str(file)
    for suffix in (".index", ".meta"):
        if name.endswith(suffix):
            prefix = name[: -len(suffix)]
            break
    else:
        match = _DATA_SUFFIX.search(name)
        if not match:
            raise InputError(f"{file}: not a file bncheck reads ({EXPECTED})")
        prefix = name[: match.start()]
    if not Path(prefix + ".index").is_file():
        raise InputError(f"{file}: its checkpoint index {Path(prefix + '.index').name} is missing")
    return prefix


def _open_directory(directory: Path, shown: str) -> Checkpoint:
    state = directory / "checkpoint"
    if state.is_file():
        return read_checkpoint(_latest_from_state(state), shown)
    variables = directory / "variables" / "variables"
    if (directory / "saved_model.pb").is_file() or Path(f"{variables}.index").is_file():
        if not Path(f"{variables}.index").is_file():
            raise InputError(f"{directory}: SavedModel without variables/variables.index")
        checkpoint = read_checkpoint(str(variables), shown, "SavedModel (variables)")
        from .keras_metadata import saved_model_hints

        for layer, hints in saved_model_hints(directory).items():
            checkpoint.hints.setdefault(layer, hints)
        return checkpoint
    indexes = sorted(directory.glob("*.index"))
    if len(indexes) == 1:
        return read_checkpoint(str(indexes[0])[: -len(".index")], shown)
    if indexes:
        names = ", ".join(p.name[: -len(".index")] for p in indexes[:5])
        raise InputError(f"{directory}: holds {len(indexes)} checkpoints ({names}); name one of them")
    raise InputError(f"{directory}: no checkpoint in this directory ({EXPECTED})")


def _latest_from_state(state: Path) -> str:
    """The latest checkpoint named by a ``checkpoint`` state file (a text proto)."""
    try:
        text = state.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{state}: cannot read ({exc.strerror})") from None
    match = _STATE_LINE.search(text)
    if not match:
        raise InputError(f"{state}: not a checkpoint state file (no model_checkpoint_path line)")
    try:  # a C-escaped string of UTF-8 bytes, as TensorFlow's text-proto writer makes it
        named = codecs.escape_decode(match[1].encode("utf-8"))[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{state}: unreadable model_checkpoint_path {match[1]!r}") from None
    candidates = [state.parent / named, state.parent / Path(named.replace("\\", "/")).name]
    for prefix in candidates:
        if Path(f"{prefix}.index").is_file():
            return str(prefix)
    raise InputError(f"{state}: names checkpoint '{named}', but {candidates[-1]}.index does not exist")


def _near_misses(target: Path) -> str:
    parent = target.parent if str(target.parent) else Path(".")
    try:
        near = sorted(p.name for p in parent.iterdir() if p.name.startswith(target.name))[:3]
    except OSError:
        return ""
    return f" (found {', '.join(near)})" if near else ""


def open_with_graph(path: str, meta: str | None = None, graph: bool = True) -> Checkpoint:
    """:func:`open_model`, plus the training graph: ``meta`` if given, else one found beside
    the checkpoint (``<prefix>.meta``, a TF1 SavedModel's "train" meta graph); none if not ``graph``."""
    checkpoint = open_model(path)
    if graph and (meta is not None or (checkpoint.file or "").endswith(".index")):  # else no graph beside it
        from .metagraph import attach_graph

        attach_graph(checkpoint, meta)
    return checkpoint
