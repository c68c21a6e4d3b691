"""How every output names a model file: relative to the working directory, with forward slashes."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from ..stores import scheme_of


def relative_path(path: str) -> str:
    """The path relative to the working directory where possible, with forward slashes; a URL as it is."""
    if scheme_of(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        relative = path
    return Path(relative).as_posix()


def relative_uri(path: str) -> str:
    """:func:`relative_path` as a URI reference (spaces, '#', '%' ... percent-encoded)."""
    return quote(relative_path(path), safe="/")
