"""Find every model under a directory, each once (for ``bncheck inspect DIR``).

A SavedModel directory is one model (not descended into); a directory with a
``checkpoint`` state file contributes its latest checkpoint; other checkpoints count
once by prefix, however many of their files (``.index``, ``.data-*``, ``.meta``) there
are; Keras files count by suffix. Symbolic links to directories are not followed, so
a link loop cannot hang a scan.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_saved_model(directory: Path) -> bool:
    return (directory / "saved_model.pb").is_file() or (directory / "variables" / "variables.index").is_file()


def _excluded(path: Path, root: Path, patterns: tuple[str, ...]) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(path.name, p) for p in patterns)


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
            found += [str(here / f[: -len(".index")]) for f in sorted(files) if f.endswith(".index")]
        found += [str(here / f) for f in sorted(files) if f.endswith(MODEL_SUFFIXES)]
    return [p for p in found if p == str(root) or not _excluded(Path(p), root, exclude)]
