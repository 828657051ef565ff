"""A Hugging Face Hub stand-in on 127.0.0.1 for the real `huggingface_hub` client.

It serves what the client asks of the real Hub for the calls localllm makes:

- `GET /api/models/{repo}[/revision/{rev}]`: model info with `siblings`
  (sizes and LFS sha256 when `?blobs=true`);
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}`: the file, with `Range` support
  (206 + Content-Range), ETag and commit headers.

Switches for failure tests: `ranges=False` (answer 200 with the whole file),
`gated` repos (401 without the right token), `drop_after` (cut the connection
after that many bytes of a response, for the next `drops` responses),
`corrupt` (flip a byte of every body), `stall_after` (stop sending for
`stall_s` seconds). Every request is logged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class FakeHub:
    repos: dict[str, dict[str, Path]] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)
    """repo -> the token that opens it."""
    ranges: bool = True
    log: list[Request] = field(default_factory=list)
    url: str = ""
    drop_after: int | None = None
    drops: int = 1
    corrupt: bool = False
    stall_after: int | None = None
    stall_s: float = 0.0
    throttle_s: float = 0.0
    """Pause after every 64 KiB sent: a slow network, so a pull can be caught mid-way."""
    digests: dict[Path, str] = field(default_factory=dict)
    """Given sha256 of files too big to hash in a test (sparse header-only models)."""
    redirects: dict[str, str] = field(default_factory=dict)
    """A file's path in its repo -> the URL its download redirects to (as the real Hub
    sends downloads to its storage)."""

    def add(self, repo: str, path_in_repo: str, file: Path, sha256: str | None = None) -> None:
        self.repos.setdefault(repo, {})[path_in_repo] = file
        if sha256 is not None:
            self.digests[file] = sha256

    def sha256(self, file: Path) -> str:
        return self.digests.get(file) or _sha256(file)

    def bytes_sent(self, path_contains: str = "") -> int:
        return sum(r.sent for r in self.log if path_contains in r.path)


@functools.cache
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test's log is hub.log

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            if path.startswith("/api/models/"):
                self._model_info(path.removeprefix("/api/models/"))
                return
            match = re.match(r"^/(.+?/.+?)/resolve/([^/]+)/(.+)$", path)
            if not match:
                self._error(404, "Entry not found", "EntryNotFound")
                return
            repo, _rev, file_path = match.groups()
            if not self._allowed(repo):
                return
            if file_path in hub.redirects and body:
                self._send(302, {"Location": hub.redirects[file_path]}, b"")
                return
            file = hub.repos.get(repo, {}).get(file_path)
            if file is None:
                self._error(404, "Entry not found", "EntryNotFound")
                return
            self._file(file, body)

        def _allowed(self, repo: str) -> bool:
            if repo not in hub.repos:
                self._error(404, "Repository not found", "RepoNotFound")
                return False
            token = hub.gated.get(repo)
            if token and self.headers.get("authorization") != f"Bearer {token}":
                self._error(401, f"Access to model {repo} is restricted.", "GatedRepo")
                return False
            return True

        def _model_info(self, rest: str) -> None:
            repo = re.sub(r"/revision/[^/]+$", "", rest)
            if not self._allowed(repo):
                return
            siblings = []
            for name, file in sorted(hub.repos[repo].items()):
                size = file.stat().st_size
                siblings.append(
                    {
                        "rfilename": name,
                        "size": size,
                        "blobId": hashlib.sha1(name.encode()).hexdigest(),
                        "lfs": {"sha256": hub.sha256(file), "size": size, "pointerSize": 135},
                    }
                )
            data = json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings}).encode()
            self._send(200, {"Content-Type": "application/json"}, data)

        def _file(self, file: Path, body: bool) -> None:
            size = file.stat().st_size
            headers = {
                "ETag": f'"{hub.sha256(file)}"',
                "X-Repo-Commit": COMMIT,
                "Accept-Ranges": "bytes" if hub.ranges else "none",
                "Content-Type": "application/octet-stream",
            }
            start, end, status = 0, size - 1, 200
            match = _RANGE.match(self.headers.get("range", "")) if hub.ranges else None
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
                if start >= size:
                    self._send(416, {"Content-Range": f"bytes */{size}"}, b"")
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            length = end - start + 1
            headers["Content-Length"] = str(length)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            sent = 0
            drop = hub.drop_after if hub.drop_after is not None and hub.drops > 0 else None
            if drop is not None:
                hub.drops -= 1
            if body:
                try:
                    with file.open("rb") as f:
                        f.seek(start)
                        while sent < length:
                            chunk = f.read(min(1 << 16, length - sent))
                            if not chunk:
                                break
                            if hub.corrupt and sent == 0:
                                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                            if drop is not None and sent + len(chunk) > drop:
                                self.wfile.write(chunk[: drop - sent])
                                sent = drop
                                self.close_connection = True
                                self.connection.shutdown(socket.SHUT_RDWR)
                                break
                            if hub.stall_after is not None and sent >= hub.stall_after:
                                time.sleep(hub.stall_s)
                                hub.stall_after = None
                            self.wfile.write(chunk)
                            sent += len(chunk)
                            if hub.throttle_s:
                                time.sleep(hub.throttle_s)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the client hung up, as a range reader may
            hub.log.append(
                Request(self.command, self.path, self.headers.get("range"), status, sent)
            )

        def _error(self, status: int, message: str, code: str) -> None:
            data = json.dumps({"error": message}).encode()
            self._send(status, {"Content-Type": "application/json", "X-Error-Code": code,
                                "X-Error-Message": message}, data)  # fmt: skip

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            hub.log.append(
                Request(self.command, self.path, self.headers.get("range"), status, len(data))
            )

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
