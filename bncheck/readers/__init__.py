"""Turn a path a user typed into a :class:`ModelFile`, whatever it points at.

Accepted: a checkpoint prefix (``model.ckpt``, ``ckpt-60``), any of its files
(``.index``, ``.data-NNNNN-of-NNNNN``, ``.meta``), a SavedModel directory (its
``variables/`` bundle), any directory holding exactly one model (as :mod:`.discover` finds
them: a ``checkpoint`` state file's latest checkpoint, one prefix, one Keras file...), a
frozen GraphDef (``.pb``), an ONNX model (``.onnx``), a ``torch.save`` file and a safetensors file or
sharded checkpoint (:mod:`.formats` lists them).
"""

from __future__ import annotations

import glob
import os
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BncheckError, InputError
from ..facts import ModelFile
from ..stores import redacted
from .discover import Found, find_models, is_saved_model, several_models
from .files import location
from .formats import described
from .sniff import read_model_file

if TYPE_CHECKING:
    from .remote import RemotePath

EXPECTED = (
    "bncheck reads TensorFlow checkpoints (a prefix such as model.ckpt, one of its "
    f".index/.data-*/.meta files, a directory with a 'checkpoint' file), SavedModel directories, {described()}"
)
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")


def read_checkpoint(prefix: str, shown: str, format_name: str | None = None) -> ModelFile:
    """:func:`.tfcheckpoint.read_checkpoint`, imported when a checkpoint is read (it needs protobuf)."""
    from ..activity import working_in
    from .tfcheckpoint import read_checkpoint as read

    working_in("bncheck's checkpoint reader")
    return read(prefix, shown, format_name)


def open_model(path: str) -> ModelFile:
    """Read the model at ``path``; raise :class:`InputError` saying what was found instead."""
    return _open(path, redacted(path))


def open_found(model: Found, meta: str | None = None, graph: bool = True) -> ModelFile:
    """Read a model :func:`.discover.find_models` found, its notes first among the reader's, with its
    training graph (see :func:`open_with_graph`)."""
    return _with_graph(_read_found(model), meta, graph)


def _read_found(model: Found) -> ModelFile:
    if model.error:
        raise InputError(model.error)
    read = _open(model.target, model.path)
    return replace(read, notes=(*model.notes, *read.notes)) if model.notes else read


def _open(path: str, shown: str) -> ModelFile:
    target = location(path)
    if path.endswith(("/", os.sep)) and not target.is_dir():
        path = path.rstrip("/" + os.sep) or path  # 'model.ckpt-20/' (a prefix completed as if a directory)
    try:
        if target.is_dir():
            return _open_directory(target, shown)
        if target.is_file():
            if target.name == "saved_model.pb":
                return _open_directory(target.parent, shown)
            one_file = None if _is_checkpoint_file(path) else read_model_file(target, shown)
            return one_file or read_checkpoint(_prefix_of_file(target), shown)
        if location(path + ".index").is_file():
            return read_checkpoint(path, shown)
        if location(path + ".meta").is_file() or _data_files(target):
            raise InputError(f"{shown}: its checkpoint index {target.name}.index is missing")
    except OSError as exc:  # e.g. a symlink loop or a permission problem while probing
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    if os.path.islink(path) and not os.path.exists(path):
        raise InputError(f"{shown}: broken symbolic link")
    special = _special_kind(path)
    if special:
        raise InputError(f"{shown}: a {special}, not a file: refused (bncheck reads model files, never a stream)")
    raise InputError(f"{shown}: no such file, directory or checkpoint prefix{_near_misses(target)}")


_SPECIAL = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _special_kind(path: str) -> str | None:
    """What a local path that is neither a file nor a directory is (a FIFO would block a read), if it is one."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _SPECIAL if test(mode)), None)


def _data_files(target: Path | RemotePath) -> bool:
    """Whether data files of a checkpoint prefix ``target`` lie beside it (a directory that cannot be listed,
    as a web server without directory pages: none seen)."""
    try:
        return any(target.parent.glob(glob.escape(target.name) + ".data-*"))
    except BncheckError:
        return False


def _is_checkpoint_file(name: str) -> bool:
    return name.endswith((".index", ".meta")) or bool(_DATA_SUFFIX.search(name))


def _prefix_of_file(file: Path | RemotePath) -> str:
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
    if not location(prefix + ".index").is_file():
        raise InputError(f"{file}: its checkpoint index {Path(prefix + '.index').name} is missing")
    return prefix


def _open_directory(directory: Path | RemotePath, shown: str) -> ModelFile:
    """A SavedModel, or the one model a directory holds."""
    if not is_saved_model(directory):
        models = find_models(str(directory))
        if len(models) > 1:
            raise InputError(f"{several_models(shown, models)}; name one of them")
        return _read_found(models[0])
    variables = directory / "variables" / "variables"
    if not location(f"{variables}.index").is_file():
        raise InputError(f"{directory}: SavedModel without variables/variables.index")
    read = read_checkpoint(str(variables), shown, "SavedModel (variables)")
    from .keras_metadata import saved_model_hints

    hints = saved_model_hints(directory)
    return replace(read, hints={**hints, **read.hints}) if hints else read


def _near_misses(target: Path | RemotePath) -> str:
    parent = target.parent if str(target.parent) else Path(".")
    try:
        near = sorted(p.name for p in parent.iterdir() if p.name.startswith(target.name))[:3]
    except (OSError, BncheckError):
        return ""
    return f" (found {', '.join(near)})" if near else ""


def open_with_graph(path: str, meta: str | None = None, graph: bool = True) -> ModelFile:
    """:func:`open_model`, plus the training graph: ``meta`` if given, else one found beside
    the checkpoint (``<prefix>.meta``, a TF1 SavedModel's "train" meta graph); none if not ``graph``."""
    return _with_graph(open_model(path), meta, graph)


def _with_graph(model: ModelFile, meta: str | None, graph: bool) -> ModelFile:
    if graph and (meta is not None or model.main_file.endswith(".index")):  # else no graph beside it
        from .metagraph import graph_file, with_graph

        try:
            path = graph_file(model, meta)
            if path is not None and path.name == "saved_model.pb":  # its signatures too, not only a training graph
                from .savedmodel import with_saved_model_graph

                return with_saved_model_graph(model, path)
            return with_graph(model, path) if path is not None else model
        except BaseException:
            model.close()
            raise
    return model
