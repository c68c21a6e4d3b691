"""Find every model under a directory, each once (for ``bncheck inspect DIR``).

A SavedModel directory is one model (not descended into); a directory with a
``checkpoint`` state file contributes its latest checkpoint; other checkpoints count
once by prefix, however many of their files (``.index``, ``.data-*``, ``.meta``) there
are; Keras and ONNX files count by suffix, ``.pb`` files when they start like a
GraphDef. Symbolic links to directories are not followed, so a link loop cannot hang a scan.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from ..errors import InputError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".onnx")
_CHECKPOINT_FILE = re.compile(r"^(.+)\.(index|meta|data-\d{5}-of-\d{5})$")


def is_saved_model(directory: Path) -> bool:
    return (directory / "saved_model.pb").is_file() or (directory / "variables" / "variables.index").is_file()


def _excluded(path: Path, root: Path, patterns: tuple[str, ...]) -> bool:
    """A glob matches the path relative to the scan root, the path as given, or the name."""
    candidates = (path.relative_to(root).as_posix(), path.as_posix(), path.name)
    return any(fnmatch.fnmatchcase(c, p) or fnmatch.fnmatchcase(c, f"*/{p}") for c in candidates for p in patterns)


def _prefixes(files: list[str]) -> list[str]:
    """Checkpoint prefixes named by any of their files, so a prefix whose .index is lost is still reported."""
    prefixes = set()
    for name in files:
        match = _CHECKPOINT_FILE.match(name)
        if match:
            prefixes.add(match[1])
    return sorted(prefixes)


def discover(root: Path, exclude: tuple[str, ...] = ()) -> list[str]:
    """Paths (files, prefixes, directories) that :func:`open_model` reads, sorted."""
    if is_saved_model(root):
        return [str(root)]
    found: list[str] = []
    for current, subdirs, files in os.walk(root, onerror=None, followlinks=False):
        here = Path(current)
        subdirs[:] = sorted(d for d in subdirs if not _excluded(here / d, root, exclude))
        if here != root and is_saved_model(here):
            found.append(str(here))
            subdirs[:] = []
            continue
        if "checkpoint" in files:
            found.append(str(here))  # its latest checkpoint, as named by the state file
        else:
            found += [str(here / prefix) for prefix in _prefixes(files)]
        found += [str(here / f) for f in sorted(files) if f.endswith(MODEL_SUFFIXES) or _is_frozen_graph(here / f)]
    return [p for p in found if p == str(root) or not _excluded(Path(p), root, exclude)]


def _is_frozen_graph(path: Path) -> bool:
    """A ``.pb`` file that starts like a GraphDef (a SavedModel's ``saved_model.pb`` is never reached here)."""
    if not path.name.endswith(".pb") or path.name == "saved_model.pb":
        return False
    from .frozen import looks_like_graph_def

    return looks_like_graph_def(path)


def model_paths(path: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """A file or prefix as given; a directory (other than a SavedModel) scanned for every model in it."""
    target = Path(path)
    if not target.is_dir() or is_saved_model(target):
        return [path]
    found = discover(target, exclude)
    if not found:
        raise InputError(
            f"{path}: no model found in this directory (looked for TensorFlow checkpoints, SavedModels, "
            ".keras, .h5, .pb and .onnx files)"
        )
    return found
