"""Find every model a path holds, each once (``bncheck inspect PATH``, ``bncheck.scan``).

A SavedModel directory is one model (not descended into). Checkpoints count once by
prefix, however many of their files (``.index``, ``.data-*``, ``.meta``) there are. In a
directory with a ``checkpoint`` state file, prefixes that differ only in a ``-N`` step, or
that the state file lists as one run, are steps of one model: the latest (the one the state
file names) is inspected and a note names the others; different prefixes are different
models. Keras, ONNX, PyTorch and safetensors files count by suffix (PyTorch's ``.bin``, ``.ckpt`` and
``.tar`` by content), ``.pb`` files when they start like a GraphDef; a sharded checkpoint is its index
(``*.index.json``), its shards not counted again.
Symbolic links are followed, each real directory once; a link into the scanned tree or to
one of its ancestors is not followed (what it points to is scanned, or holds the scan).
"""

from __future__ import annotations

import codecs
import fnmatch
import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..naming import INDEX_SUFFIX
from ..stores import redacted
from .files import is_url, location
from .formats import scanned_as_model
from .lfs import refuse_pointer

if TYPE_CHECKING:
    from .remote import RemotePath

_CHECKPOINT_FILE = re.compile(r"^(.+)\.(index|meta|data-\d{5}-of-\d{5})$")
_STATE_LINE = re.compile(r'^(model_checkpoint_path|all_model_checkpoint_paths):\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)
_STEP = re.compile(r"^(.*)-(\d+)$")
_NAMED = 10  # skipped checkpoints named in a note; more are counted


@dataclass(frozen=True)
class Found:
    """One model: the path to show, what to open (a file, checkpoint prefix or SavedModel directory),
    notes for its report, and why it cannot be opened (an unreadable state file)."""

    path: str
    target: str
    notes: tuple[str, ...] = ()
    error: str | None = None


def is_saved_model(directory: Path) -> bool:
    return (directory / "saved_model.pb").is_file() or (directory / "variables" / "variables.index").is_file()


def find_models(path: str, exclude: tuple[str, ...] = ()) -> list[Found]:
    """A file or prefix as given; a directory scanned for every model in it (a SavedModel is one)."""
    target = location(path)
    if not target.is_dir():
        return [Found(redacted(path), path)]
    found = _scan(target, exclude)
    if not found:
        raise InputError(
            f"{path}: no model found in this directory (looked for TensorFlow checkpoints, SavedModels, "
            ".keras, .h5, .pb, .onnx, PyTorch (.pt, .pth; .bin, .ckpt, .tar by content) and .safetensors files)"
        )
    return found


def several_models(path: str, models: list[Found]) -> str:
    """'PATH: holds N models (a, b, ...)', for a message that needs one."""
    names = ", ".join(Path(m.path).name for m in models[:5]) + (", ..." if len(models) > 5 else "")
    return f"{path}: holds {len(models)} models ({names})"


def input_files(path: str, exclude: tuple[str, ...] = ()) -> Iterator[Path]:
    """Every file the models at ``path`` are read from (for refusing to write over one; none for a URL)."""
    if is_url(path):
        return
    try:
        models = find_models(path, exclude)
    except InputError:
        return
    for model in models:
        yield from _files_of(Path(model.target))


def _files_of(target: Path) -> Iterator[Path]:
    """The files of the model :func:`.open_model` reads at ``target`` (some may not exist)."""
    if target.is_dir():  # a SavedModel, or a directory whose state file is unreadable
        for current, _, files in os.walk(target):
            yield from (Path(current) / name for name in files)
        return
    match = _CHECKPOINT_FILE.match(target.name)
    if target.is_file() and target.name.endswith(INDEX_SUFFIX):
        yield target
        yield from (target.parent / name for name in _shards(target.parent, [target.name]))
        return
    if target.is_file() and not match:
        yield from _files_of(target.parent) if target.name == "saved_model.pb" else (target,)
        return
    prefix = target.parent / match[1] if match else target
    yield from (p for p in target.parent.glob(glob.escape(prefix.name) + ".*") if _CHECKPOINT_FILE.match(p.name))
    yield prefix.parent / "checkpoint"  # the state file that names it, if any


def _excluded(path: Path, root: Path, patterns: tuple[str, ...]) -> bool:
    """A glob matches the path relative to the scan root, the path as given, or the name."""
    candidates = (path.relative_to(root).as_posix(), path.as_posix(), path.name)
    return any(fnmatch.fnmatchcase(c, p) or fnmatch.fnmatchcase(c, f"*/{p}") for c in candidates for p in patterns)


def _prefixes(files: list[str]) -> list[str]:
    """Checkpoint prefixes named by any of their files, so a prefix whose .index is lost is still reported."""
    return sorted({match[1] for match in map(_CHECKPOINT_FILE.match, files) if match})


def _scan(root: Path | RemotePath, exclude: tuple[str, ...]) -> list[Found]:
    if is_saved_model(root):
        return [Found(str(root), str(root))]
    found: list[Found] = []
    for here, subdirs, files in _walk(root, exclude):
        if here != root and is_saved_model(here):
            found.append(Found(str(here), str(here)))
            subdirs[:] = []
            continue
        if "checkpoint" in files:
            found += _state_directory(here, _prefixes(files))
        else:
            found += [Found(str(here / prefix), str(here / prefix)) for prefix in _prefixes(files)]
        shards = _shards(here, files)
        found += [
            Found(str(here / f), str(here / f)) for f in sorted(files) if f not in shards and scanned_as_model(here / f)
        ]
    return [m for m in found if m.path == str(root) or not _excluded(location(m.path), root, exclude)]


def _walk(root: Path | RemotePath, exclude: tuple[str, ...]) -> Iterator[tuple[Any, list[str], list[str]]]:
    """The directories under ``root`` as :func:`os.walk` gives them (prune the subdirectories in place), the
    excluded ones left out; on disk links followed, each real directory once (:func:`_to_visit`)."""
    if not isinstance(root, Path):
        for here, subdirs, files in root.walk():
            subdirs[:] = [d for d in subdirs if not _excluded(here / d, root, exclude)]
            yield here, subdirs, files
        return
    real_root = os.path.realpath(root)
    seen = {_identity(root)}
    for current, subdirs, files in os.walk(root, followlinks=True):
        here = Path(current)
        subdirs[:] = _to_visit(here, subdirs, root, real_root, seen, exclude)
        yield here, subdirs, files


def _shards(directory: Path, files: list[str]) -> set[str]:
    """The files of ``directory`` that a sharded checkpoint's index names: parts of that model, not models."""
    indexes = [name for name in files if name.endswith(INDEX_SUFFIX)]
    if not indexes:
        return set()
    from ..errors import BncheckError
    from .safetensors_file import index_shards

    shards: set[str] = set()
    for name in indexes:
        try:
            shards.update(index_shards(directory / name).values())
        except BncheckError:
            continue  # reported when the index itself is read
    return shards


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _to_visit(
    here: Path, subdirs: list[str], root: Path, real_root: str, seen: set, exclude: tuple[str, ...]
) -> list[str]:
    """The subdirectories to descend into, sorted: real directories first claim their identity, then links."""
    names = sorted(d for d in subdirs if not _excluded(here / d, root, exclude))
    visit = set()
    for name in sorted(names, key=lambda d: os.path.islink(here / d)):
        path = here / name
        identity = _identity(path)
        if identity is None or identity in seen:
            continue
        if os.path.islink(path):
            real = os.path.realpath(path)
            if _within(real, real_root) or _within(real_root, real):  # scanned anyway, or holds the scan
                continue
        seen.add(identity)
        visit.add(name)
    return [d for d in names if d in visit]


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------- checkpoint state files


def read_state(state: Path) -> tuple[str, list[str]]:
    """The latest checkpoint a ``checkpoint`` state file (a text proto) names, and all it lists."""
    try:
        data = state.read_bytes()
    except OSError as exc:
        raise InputError(f"{state}: cannot read ({exc.strerror})") from None
    refuse_pointer(data, str(state))
    text = data.decode("utf-8", errors="replace")
    latest: str | None = None
    listed = []
    for field, raw in _STATE_LINE.findall(text):
        try:  # a C-escaped string of UTF-8 bytes, as TensorFlow's text-proto writer makes it
            name = codecs.escape_decode(raw.encode("utf-8"))[0].decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"{state}: unreadable {field} {raw!r}") from None
        if field == "model_checkpoint_path":
            latest = name
        else:
            listed.append(name)
    if latest is None:
        raise InputError(f"{state}: not a checkpoint state file (no model_checkpoint_path line)")
    return latest, listed


def _base_name(named: str) -> str:
    """The file name of a path the state file holds (absolute, relative, or written on Windows)."""
    return Path(named.replace("\\", "/")).name


def _step(prefix: str) -> tuple[str, int]:
    match = _STEP.match(prefix)
    return (match[1], int(match[2])) if match else (prefix, -1)


def _state_directory(directory: Path, prefixes: list[str]) -> list[Found]:
    """The models of a directory with a state file: one per model, the latest of its steps."""
    state = directory / "checkpoint"
    try:
        named, listed = read_state(state)
    except InputError as exc:
        return [Found(str(directory), str(directory), error=str(exc))]
    latest = _base_name(named)
    if not prefixes:
        missing = f"{state}: names checkpoint '{named}', but {directory / latest}.index does not exist"
        return [Found(str(directory), str(directory), error=missing)]
    run = [p for p in map(_base_name, [*listed, named]) if p in prefixes]  # one Saver's steps, oldest first
    run_bases = {_step(p)[0] for p in run}
    models: dict[str | None, list[str]] = {}  # by base name; None: the Saver's run
    for prefix in prefixes:
        base = _step(prefix)[0]
        models.setdefault(None if prefix in run or base in run_bases else base, []).append(prefix)
    common: tuple[str, ...] = ()
    if latest not in prefixes:
        common = (f"{state} names checkpoint '{named}', which is not in this directory: inspected the ones present",)
    found = []
    for steps in models.values():
        chosen = max(steps, key=lambda p: (p == latest, _step(p)[1], run.index(p) if p in run else -1, p))
        older = sorted((p for p in steps if p != chosen), key=lambda p: (_step(p)[1], p))
        notes = common
        if older:
            shown = ", ".join(older[:_NAMED]) + (f" (+{len(older) - _NAMED} more)" if len(older) > _NAMED else "")
            notes += (f"skipped {len(older)} older checkpoint(s) of {chosen}: {shown} (name one to inspect it)",)
        path = str(directory) if len(models) == 1 else str(directory / chosen)
        found.append(Found(path, str(directory / chosen), notes))
    return sorted(found, key=lambda m: m.path)
