"""Models in object stores and hubs (``s3://``, ``gs://``, ``az://``, ``http(s)://``, ``hf://``), read by range.

Through fsspec and the filesystem package made for each store (the optional extra ``bncheck[remote]``).
A :class:`RemotePath` answers what readers ask a :class:`pathlib.Path` (``is_file``, ``iterdir``, ``open``...);
its files are :class:`RangeFile`s, which fetch only the blocks read, neighbouring missing blocks in one
request, and keep recent blocks. Credentials and endpoints come from each store's own environment
(``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``HF_TOKEN``...) and from :class:`Options`; none is ever shown.
Every failure is an :class:`InputError` naming the URL and the reason.
"""

from __future__ import annotations

import fnmatch
import posixpath
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import PurePosixPath
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from ..activity import waiting
from ..errors import InputError
from ..stores import SCHEMES, options, redacted, scheme_of
from .positional import Positional

EXTRA = "pip install 'bncheck[remote]'"
BLOCK = 1 << 14  # bytes fetched at least, and cached, per read
CACHED_BLOCKS = 2048  # 32 MiB of recent blocks, of every remote file (a file is opened again by each probe)
DIRECT = 4 * BLOCK  # reads at least this large are fetched exactly, not cached
MAX_DEPTH = 32  # directory levels a remote scan descends
CONCURRENT = 8  # requests in flight at once when a reader says what it will read
MIN_RATE = 1 << 18  # bytes per second a remote read must keep up (256 KiB/s), besides the timeout


def filesystem(scheme: str, url: str) -> Any:
    """The fsspec filesystem of ``scheme`` with the configured options; exit 2 naming the extra if it is missing."""
    protocol, package = SCHEMES[scheme]
    try:
        import fsspec

        __import__(package)
    except ImportError:
        raise InputError(f"{url}: reading {scheme}:// URLs needs {package} and fsspec: {EXTRA}") from None
    settings = options()
    given = {**_defaults(protocol, settings.timeout), **settings.storage_options.get(scheme, {})}
    try:
        return fsspec.filesystem(protocol, **given)
    except Exception as exc:  # a bad storage option, credentials the store's package refuses...
        raise failure(url, exc) from None


def _defaults(protocol: str, timeout: float) -> dict[str, Any]:
    if protocol in ("http", "https"):
        import aiohttp

        # a deadline to connect and between reads, not for a whole body (a large graph file may take longer)
        deadline = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        return {"client_kwargs": {"timeout": deadline}}
    if protocol == "s3":
        retries = {"max_attempts": 2, "mode": "standard"}
        return {"config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout, "retries": retries}}
    return {}


_REASONS = (  # exception class names, anywhere in its MRO -> the reason shown
    (("FileNotFoundError", "NoSuchKey", "NoSuchBucket", "EntryNotFoundError", "RepositoryNotFoundError"), "not found"),
    (("PermissionError", "AccessDenied", "GatedRepoError"), "access denied (check the credentials)"),
    (("TimeoutError", "ServerTimeoutError", "ConnectTimeoutError", "ReadTimeoutError", "FSTimeoutError"), None),
    (  # (ServiceRequestError: azure-core's, the request never reached the service)
        (
            "ClientConnectorError",
            "EndpointConnectionError",
            "ConnectionError",
            "ServerDisconnectedError",
            "ServiceRequestError",
        ),
        "unreachable",
    ),
)


def failure(url: str, exc: BaseException) -> InputError:
    """``exc``, raised while reading ``url``, as the error bncheck shows: the URL and the reason."""
    if isinstance(exc, InputError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = _status(exc)
    if status in (401, 403):
        return InputError(f"{url}: access denied (HTTP {status}; check the credentials)")
    if status == 404:
        return InputError(f"{url}: not found (HTTP 404)")
    for classes, reason in _REASONS:
        if names.intersection(classes):
            if reason is None:
                return InputError(f"{url}: no answer within {options().timeout:g} s (the remote timeout)")
            return InputError(f"{url}: {reason}" + (f" ({str(exc).splitlines()[0][:200]})" if str(exc) else ""))
    if isinstance(status, int):
        return InputError(f"{url}: the server answered HTTP {status}")
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return InputError(f"{url}: cannot read ({text})")


def _status(exc: BaseException) -> int | None:
    """The HTTP status an error carries (aiohttp's ``status``, a botocore response's code), if any."""
    status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _ignores_range(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "range" in str(exc).lower()


def _checked(url: str, scheme: str) -> str:
    """``url`` as bncheck reads it (an http one with its spaces and such percent-encoded, as pages link to it);
    one that carries credentials (``user:password@``, a presigned query) is refused: reports name the URL."""
    if redacted(url) != url:
        raise InputError(
            f"{redacted(url)}: a URL with a user, a password or a query (a presigned URL?) is not read, since "
            "reports name their model by its URL: give credentials in the store's environment or in "
            "[tool.bncheck.remote]"
        )
    return quote(url, safe=":/%@!$&'()*+,;=~[]") if scheme.startswith("http") else url


class RemotePath:
    """A file or directory-like prefix in a store, by URL: what readers ask a :class:`pathlib.Path`."""

    def __init__(self, url: str, fs: Any = None) -> None:
        self.scheme = scheme_of(url) or ""
        if fs is None:
            url = _checked(url, self.scheme)
        self.url = url.rstrip("/") if url.rstrip("/") != f"{self.scheme}:/" else url
        self.fs = fs if fs is not None else filesystem(self.scheme, url)

    @property
    def _path(self) -> str:
        return self.fs._strip_protocol(self.url)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(f"{self.url}/{name}", self.fs)

    @property
    def name(self) -> str:
        return posixpath.basename(self._tail)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def _tail(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def parent(self) -> RemotePath:
        head = posixpath.dirname(self._tail)
        return RemotePath(f"{self.scheme}://{head}", self.fs) if head else self

    def as_posix(self) -> str:
        return self.url

    def relative_to(self, root: RemotePath) -> PurePosixPath:
        return PurePosixPath(posixpath.relpath(self._tail, root._tail))

    def info(self) -> dict[str, Any] | None:
        """The store's facts about this URL (type, size), None if there is nothing there; asked once a minute."""
        known = _INFO.get(self.url)
        if known is not None and time.monotonic() - known[0] < INFO_SECONDS:
            return known[1]
        try:
            with waiting():
                info = self.fs.info(self._path)
        except FileNotFoundError as exc:  # fsspec's HTTP info says so for every failure: the cause tells
            cause = exc.__cause__ or exc.__context__
            if cause is not None and not isinstance(cause, FileNotFoundError) and _status(cause) != 404:
                raise failure(self.url, cause) from None
            info = None
        except Exception as exc:
            raise failure(self.url, exc) from None
        _remember(self.url, info)
        return info

    def is_file(self) -> bool:
        info = self.info()
        return info is not None and info.get("type") == "file" and info.get("mimetype") != "text/html"

    def is_dir(self) -> bool:
        info = self.info()
        if info is not None and self.scheme.startswith("http"):  # a page of links stands for a directory
            return info.get("mimetype") == "text/html"
        return info is not None and info.get("type") == "directory"

    def exists(self) -> bool:
        return self.info() is not None

    def stat(self) -> SimpleNamespace:
        info = self.info()
        if info is None:
            raise FileNotFoundError(self.url)
        if info.get("type") != "file":
            return SimpleNamespace(st_size=0, st_mode=stat.S_IFDIR | 0o555)
        return SimpleNamespace(st_size=self._size(info), st_mode=stat.S_IFREG | 0o444)

    def _size(self, info: dict[str, Any]) -> int:
        size = info.get("size")
        if not isinstance(size, int) or size < 0:
            raise InputError(
                f"{self.url}: the server does not say the size of the file (no Content-Length): bncheck "
                "reads files by range and needs it"
            )
        return size

    def iterdir(self) -> Iterator[RemotePath]:
        try:
            with waiting():
                names = self.fs.ls(self._path, detail=False)
        except Exception as exc:
            raise failure(self.url, exc) from None
        inside = self._path.rstrip("/") + "/"
        for name in sorted(n.rstrip("/") for n in names):
            if name.startswith(inside) and "/" not in name[len(inside) :]:
                yield self / name[len(inside) :]

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        return (child for child in self.iterdir() if fnmatch.fnmatchcase(child.name, pattern))

    def walk(self, depth: int = 0) -> Iterator[tuple[RemotePath, list[str], list[str]]]:
        """Like :func:`os.walk` (top down; prune the list of subdirectories in place), at most MAX_DEPTH levels
        down (a server's link to a directory above it would make the tree endless)."""
        try:
            with waiting():
                listing = self.fs.ls(self._path, detail=True)
        except Exception as exc:
            raise failure(self.url, exc) from None
        subdirs, files = [], []
        inside = self._path.rstrip("/") + "/"
        for entry in listing:
            name = entry["name"].rstrip("/")
            if name.startswith(inside) and "/" not in name[len(inside) :]:  # a child, not a link elsewhere
                child = name[len(inside) :]
                is_dir = entry.get("type") == "directory"
                (subdirs if is_dir else files).append(child)
                if not is_dir and entry.get("size") is not None:
                    _remember(f"{self.url}/{child}", entry)
        subdirs.sort()
        if depth >= MAX_DEPTH:
            subdirs.clear()
        yield self, subdirs, sorted(files)
        for name in subdirs:
            yield from (self / name).walk(depth + 1)

    def read_bytes(self) -> bytes:
        with self.open("rb") as stream:
            return stream.read()

    def open(self, mode: str = "rb") -> RangeFile:
        if mode != "rb":
            raise ValueError("remote files are read only")
        info = self.info()
        if info is None or info.get("type") != "file":
            raise InputError(f"{self.url}: not found")
        return RangeFile(self, self._size(info))


INFO_SECONDS = 60.0  # how long what a store said about a URL is believed
_INFO: dict[str, tuple[float, dict[str, Any] | None]] = {}


_LOCK = threading.Lock()
_BLOCKS: OrderedDict[tuple[tuple[str, int, str], int], bytes] = OrderedDict()  # (file, block) -> bytes


def _remember(url: str, info: dict[str, Any] | None) -> None:
    if len(_INFO) >= 100_000:
        _INFO.clear()
    _INFO[url] = (time.monotonic(), info)


class RangeFile(Positional):
    """A remote file read by range: blocks of :data:`BLOCK` bytes fetched on demand (the missing blocks of one
    read in one request) and the recent ones kept; large reads fetched exactly. ``pread`` like :func:`os.pread`."""

    def __init__(self, path: RemotePath, size: int) -> None:
        super().__init__()
        self.path, self.size, self._pos = path, size, 0
        info = _INFO.get(path.url, (0.0, None))[1] or {}
        version = next((info[k] for k in ("ETag", "etag", "Last-Modified", "LastModified", "mtime") if info.get(k)), "")
        self._key = (path.url, size, str(version))
        self._whole: bytes | None = None  # a server that ignores Range, within the download limit
        self._file: Any = None

    def pread(self, count: int, start: int) -> bytes:
        """The ``count`` bytes at ``start`` (fewer at the end of the file)."""
        end = min(start + count, self.size)
        if start >= end:
            return b""
        if self._whole is not None:
            return self._whole[start:end]
        if end - start >= DIRECT:
            return self._fetch(start, end)
        first, last = start // BLOCK, (end - 1) // BLOCK
        key = self._key
        with _LOCK:
            pieces = {b: _BLOCKS.get((key, b)) for b in range(first, last + 1)}
        for run in _runs([b for b, piece in pieces.items() if piece is None]):
            data = self._fetch(run[0] * BLOCK, min((run[-1] + 1) * BLOCK, self.size))
            for i, block in enumerate(run):
                pieces[block] = data[i * BLOCK : (i + 1) * BLOCK]
        with _LOCK:  # (threads of one process share the blocks: a Dask worker's, say)
            for block, piece in pieces.items():
                _BLOCKS[key, block] = piece
                _BLOCKS.move_to_end((key, block))
            while len(_BLOCKS) > CACHED_BLOCKS:
                _BLOCKS.popitem(last=False)
        return b"".join(pieces.values())[start - first * BLOCK : end - first * BLOCK]

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch the missing blocks of the small ``(start, end)`` ranges in concurrent requests (once one
        ranged read has shown that the server answers ranges), into the block cache."""
        key, wanted = self._key, set()
        for start, end in ranges:
            if 0 <= start < end <= self.size and end - start < DIRECT:
                wanted.update(range(start // BLOCK, (end - 1) // BLOCK + 1))
        with _LOCK:
            missing = sorted(block for block in wanted if (key, block) not in _BLOCKS)
        runs = [(run[0] * BLOCK, min((run[-1] + 1) * BLOCK, self.size)) for run in _runs(missing)]
        if self._whole is not None or len(runs) < 2 or len(missing) > CACHED_BLOCKS // 2:
            return
        if self._file is None:
            self.pread(runs[0][1] - runs[0][0], runs[0][0])  # through the file: it checks the answer is a range
            runs = runs[1:]
        if self._whole is not None:
            return
        fs, path = self.path.fs, self.path._path
        try:
            starts, ends = [s for s, _ in runs], [e for _, e in runs]
            limit = deadline(sum(e - s for s, e in runs))
            with waiting():
                answers = fs.cat_ranges(
                    [path] * len(runs), starts, ends, on_error="return", batch_size=CONCURRENT, timeout=limit
                )
        except Exception as exc:
            raise failure(self.path.url, exc) from None
        with _LOCK:
            for (start, end), data in zip(runs, answers, strict=True):
                if not isinstance(data, bytes) or len(data) != end - start:
                    continue  # read again, alone, when asked for: that read says what is wrong
                for i in range(0, end - start, BLOCK):
                    _BLOCKS[key, (start + i) // BLOCK] = data[i : i + BLOCK]
            while len(_BLOCKS) > CACHED_BLOCKS:
                _BLOCKS.popitem(last=False)

    def _fetch(self, start: int, end: int) -> bytes:
        fs, path = self.path.fs, self.path._path
        try:
            with waiting():
                if self._file is None:
                    self._file = fs.open(path, "rb", cache_type="none", block_size=BLOCK, size=self.size)
                fetch = getattr(self._file, "async_fetch_range", None)  # HTTP: it checks the answer is a range
                if fetch is not None:
                    data = _within(deadline(end - start), fs, fetch, start, end)
                elif getattr(fs, "async_impl", False):  # object stores answer ranges
                    data = _within(deadline(end - start), fs, fs._cat_file, path, start=start, end=end)
                else:
                    self._file.seek(start)
                    data = self._file.read(end - start)
        except Exception as exc:
            if not _ignores_range(exc):
                raise failure(self.path.url, exc) from None
            return self._download()[start:end]
        if len(data) != end - start:
            raise InputError(f"{self.path.url}: the server sent {len(data)} bytes for a {end - start}-byte range")
        return data

    def _download(self) -> bytes:
        """The whole file, from a server that ignores ``Range``: only within the limit the user set."""
        limit = options().download_limit
        if self.size > limit:
            raise InputError(
                f"{self.path.url}: the server ignores Range requests, so reading its BN tensors would download the "
                f"whole {self.size}-byte file; bncheck refuses (allow it up to a size with download-limit in "
                "[tool.bncheck.remote])"
            )
        try:  # streamed, and no more than the limit read: the server's size may be a lie
            with waiting(), self.path.fs.open(self.path._path, "rb", block_size=0) as stream:
                pieces, count = [], 0
                while count <= limit and (piece := stream.read(limit + 1 - count)):
                    pieces.append(piece)
                    count += len(piece)
            self._whole = b"".join(pieces)
        except Exception as exc:
            raise failure(self.path.url, exc) from None
        if len(self._whole) != self.size:
            raise InputError(f"{self.path.url}: the server sent {len(self._whole)} bytes of a {self.size}-byte file")
        return self._whole

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def deadline(count: int) -> float:
    """Seconds a read of ``count`` bytes may take in all: the timeout, plus the time at MIN_RATE (a server
    that sends a byte now and then never trips a timeout between reads)."""
    return options().timeout + count / MIN_RATE


def _within(seconds: float, fs: Any, coroutine: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an fsspec coroutine on its filesystem's loop, ended after ``seconds`` (FSTimeoutError)."""
    from fsspec.asyn import sync

    return sync(fs.loop, coroutine, *args, timeout=seconds, **kwargs)


def _runs(blocks: list[int]) -> Iterator[list[int]]:
    """Consecutive block numbers, grouped."""
    run: list[int] = []
    for block in blocks:
        if run and block != run[-1] + 1:
            yield run
            run = []
        run.append(block)
    if run:
        yield run
