"""Which paths are URLs of object stores and hubs, and how bncheck reads them (``[tool.bncheck.remote]``).

Light on purpose (configuration and every output name URLs): the reading itself is :mod:`.readers.remote`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# scheme -> (fsspec protocol, the package that serves it)
SCHEMES = {
    "s3": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("abfs", "adlfs"),
    "abfs": ("abfs", "adlfs"),
    "abfss": ("abfs", "adlfs"),
    "http": ("http", "aiohttp"),
    "https": ("https", "aiohttp"),
    "hf": ("hf", "huggingface_hub"),
}
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


@dataclass(frozen=True)
class Options:
    """How remote files are read: a per-request deadline in seconds, what a server that ignores ``Range`` may
    send whole (bytes; 0: refuse such a server), and storage options per scheme, passed to its filesystem."""

    timeout: float = 30.0
    download_limit: int = 0
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict)


_options = Options()


def configure(options: Options) -> None:
    """Use ``options`` for the remote files opened from now on in this process."""
    global _options
    _options = options


def options() -> Options:
    return _options


def scheme_of(text: str) -> str | None:
    """The scheme of a URL bncheck reads remotely (``s3``, ``https``...), else None (a local path)."""
    match = _URL.match(text)
    return match[1].lower() if match and match[1].lower() in SCHEMES else None


def redacted(text: str) -> str:
    """``text`` as outputs may show it: a URL without its user, password, query and fragment (where presigned
    URLs carry their signature); anything else as it is."""
    if scheme_of(text) is None:
        return text
    parts = urlsplit(text)
    if not (parts.username or parts.password or parts.query or parts.fragment):
        return text
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
