"""Servers on 127.0.0.1 for the remote-input tests: an HTTP file server with Range support that counts what it
sends, moto's S3 server, gcp-storage-emulator's GCS API and Azurite's Azure Blob service. Nothing leaves the
machine."""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Traffic:
    """What the server sent: requests by method and the body bytes of every GET."""

    requests: int = 0
    gets: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.requests = self.gets = self.bytes = 0
        self.paths.clear()


class RangeServer(ThreadingHTTPServer):
    """Serves ``root`` like a static file host (HEAD, GET, ``Range: bytes=a-b``, directory pages of links).
    ``ignore_range``: answer every GET with the whole file; ``forbidden``: paths answered 403; ``stall``: paths
    whose answer never comes; ``no_length``: paths answered without a Content-Length (chunked). Files carry an
    ETag of their size and modification time."""

    daemon_threads = True
    request_queue_size = 128  # as a real server's backlog: concurrent connections are not dropped

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve()
        self.traffic = Traffic()
        self.ignore_range = False
        self.forbidden: set[str] = set()
        self.stall: set[str] = set()
        self.no_length: set[str] = set()
        self.trickle: set[str] = set()  # paths whose body comes a byte every 0.2 s
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall per request)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        server = self.server
        path = unquote(self.path.split("?", 1)[0])
        with server.lock:
            server.traffic.requests += 1
            server.traffic.gets += body
            server.traffic.paths.append(f"{self.command} {path}")
        if path in server.stall:
            time.sleep(30)
            return
        if path in server.forbidden:
            self._status(HTTPStatus.FORBIDDEN)
            return
        target = (server.root / path.lstrip("/")).resolve()
        if server.root not in (target, *target.parents) or not target.exists():
            self._status(HTTPStatus.NOT_FOUND)
            return
        if target.is_dir():
            data, kind, status, extra = self._listing(path, target), "text/html", HTTPStatus.OK, {}
        else:
            info = target.stat()
            size = info.st_size
            start, end, status = 0, size - 1, HTTPStatus.OK
            extra = {"Accept-Ranges": "bytes", "ETag": f'"{info.st_mtime_ns}-{size}"'}
            kind = "application/octet-stream"
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and not server.ignore_range:
                start = int(match[1])
                end = min(int(match[2]) if match[2] else size - 1, size - 1)
                if start >= size:
                    self._status(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    return
                extra["Content-Range"] = f"bytes {start}-{end}/{size}"
                status = HTTPStatus.PARTIAL_CONTENT
            with target.open("rb") as stream:
                stream.seek(start)
                data = stream.read(end + 1 - start) if body else b""
            if not body:
                extra["Content-Length"] = str(end + 1 - start)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        chunked = path in server.no_length
        if chunked:
            extra.pop("Content-Length", None)
            extra["Transfer-Encoding"] = "chunked"
        else:
            extra.setdefault("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if chunked and body:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n" if data else b"0\r\n\r\n"
        elif chunked:
            data = b""
        if body:
            with server.lock:
                server.traffic.bytes += len(data)
            with contextlib.suppress(ConnectionError):
                if path not in server.trickle:
                    self.wfile.write(data)
                for i in range(len(data) if path in server.trickle else 0):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)

    def _listing(self, path: str, directory: Path) -> bytes:
        base = path if path.endswith("/") else path + "/"
        links = [
            f'<a href="{quote(base + p.name + ("/" if p.is_dir() else ""))}">{html.escape(p.name)}</a>'
            for p in sorted(directory.iterdir())
        ]
        return ("<html><body>" + "<br>".join(links) + "</body></html>").encode()

    def _status(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def range_server(root: Path) -> Iterator[RangeServer]:
    server = RangeServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def s3_server(own_process: bool = False) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (in a thread, or ``own_process``: its memory and CPU not counted as the
    caller's); yields its endpoint URL."""
    if own_process:
        port = free_port()
        code = f"from moto.server import main; main(['-H', '127.0.0.1', '-p', '{port}'])"
        with _serving([sys.executable, "-c", code], port) as endpoint:
            yield endpoint
        return
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


GCS_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}  # else gcsfs asks a gRPC control API each bucket's layout


@contextlib.contextmanager
def gcs_server(bucket: str) -> Iterator[str]:
    """The gcp-storage-emulator's GCS JSON API on 127.0.0.1 (its own process, in memory, ``bucket`` created);
    yields its endpoint URL, which gcsfs reads from STORAGE_EMULATOR_HOST."""
    port = free_port()
    command = [sys.executable, "-m", "gcp_storage_emulator", "start", "-H", "127.0.0.1", "--port", str(port)]
    with _serving([*command, "--in-memory", "--default-bucket", bucket, "-q"], port) as endpoint:
        yield endpoint


# Azurite's account and key: the development storage account every Azure emulator has (public, documented)
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CACHE = Path.home() / ".cache" / "bncheck-azurite"  # where .ci/run installs it (npm --prefix)
AZURITE_INSTALL = f"npm install --no-save --prefix {AZURITE_CACHE} azurite@3.35.0"


def azure_connection(endpoint: str, key: str = AZURE_KEY) -> str:
    """The connection string of Azurite's account at ``endpoint``, as a user sets AZURE_STORAGE_CONNECTION_STRING."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{AZURE_ACCOUNT};"
    )


@contextlib.contextmanager
def azurite_server() -> Iterator[str]:
    """Azurite's Blob service on 127.0.0.1 (Node.js, its own process, in memory, no telemetry); yields its
    endpoint URL. Azurite comes from npm: on PATH, or installed by AZURITE_INSTALL (what .ci/run does)."""
    command = shutil.which("azurite-blob") or str(AZURITE_CACHE / "node_modules" / ".bin" / "azurite-blob")
    if not Path(command).exists():
        raise RuntimeError(f"the Azure tests need Azurite, from npm: {AZURITE_INSTALL}")
    port = free_port()
    flags = ["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
    with _serving([command, "--blobHost", "127.0.0.1", "--blobPort", str(port), *flags], port) as endpoint:
        yield endpoint


def upload_azure(connection: str, container: str, root: Path, prefix: str) -> None:
    """Every file under ``root`` into ``container`` (created), under ``prefix``, through adlfs."""
    from adlfs import AzureBlobFileSystem

    fs = AzureBlobFileSystem(connection_string=connection)
    fs.mkdir(container)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        fs.pipe_file(f"{container}/{prefix}/{path.relative_to(root).as_posix()}", path.read_bytes())


@contextlib.contextmanager
def _serving(command: list[str], port: int) -> Iterator[str]:
    """A server started by ``command`` in its own process, once it listens on ``port``: its endpoint URL."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{command[:3]}: nothing listens on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def upload_gcs(endpoint: str, bucket: str, root: Path, prefix: str) -> None:
    """Every file under ``root`` into ``bucket``, under ``prefix``, through gcsfs."""
    from gcsfs.core import GCSFileSystem  # not the layout-asking one gcsfs exports by default (GCS_ENV)

    fs = GCSFileSystem(endpoint_url=endpoint, token="anon")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):  # (fs.put asks after every target: minutes)
        fs.pipe_file(f"{bucket}/{prefix}/{path.relative_to(root).as_posix()}", path.read_bytes())


def upload(endpoint: str, bucket: str, root: Path, prefix: str = "") -> None:
    """Every file under ``root`` into ``bucket`` (created), under ``prefix``."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    for current, _, files in os.walk(root):
        for name in files:
            path = Path(current) / name
            key = (prefix + "/" if prefix else "") + path.relative_to(root).as_posix()
            client.upload_file(str(path), bucket, key)


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }
