"""Download one file into the blob store: ranged, parallel, resumable, verified.

`<digest>.partial` is the file at its full size, filled part by part by a few
connections; `<digest>.partial.json` lists the parts already written (fsynced
before they are listed). So an interrupted pull (Ctrl-C, `kill -9`, a dropped
connection, a reboot) continues from what is on disk, re-fetching at most the
parts that were in flight; a connection that drops mid-part is resumed from
the byte where it stopped. Only a 206 answer is accepted for a part; a server
that ignores ranges gets one plain stream from the start instead.

A lock per blob makes a second pull of the same file (another terminal, the
API) wait for the first and then find the blob ready: one download, both finish.
The sha256 from the Hub's LFS metadata is checked before the blob appears
under its name; a mismatch deletes the partial data, since it cannot say
which part is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from localllm.errors import LocalLLMError
from localllm.store.atomic import atomic_write, fsync_dir, storage_error
from localllm.store.blobs import Blob, BlobStore

PART_SIZE = 16 << 20
CONNECTIONS = 4
RETRIES = 5
READ_TIMEOUT_S = 30.0


class DownloadError(LocalLLMError):
    """A download failed; what was already written is kept for the next attempt."""


class _NoRanges(Exception):
    """The server answered a range request with the whole file."""


class _Fatal(DownloadError):
    """Retrying cannot help (access denied, not found)."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    size: int
    sha256: str | None
    """Hex digest, as the Hub's LFS metadata gives it; None for a bare URL, whose
    digest is computed when it has arrived (nothing to check it against)."""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str | None:
        return f"sha256-{self.sha256}" if self.sha256 else None

    @property
    def key(self) -> str:
        """Names the partial file and the lock: the digest, or the URL's hash."""
        return self.digest or "url-" + hashlib.sha256(self.url.encode()).hexdigest()[:32]


@dataclass
class Progress:
    total: int
    done: int = 0
    resumed: int = 0
    """Bytes found on disk from an earlier attempt."""
    fetched: int = 0
    """Bytes received in this attempt (re-fetched ones included)."""
    started: float = field(default_factory=time.monotonic)

    @property
    def speed(self) -> float:
        return self.fetched / max(time.monotonic() - self.started, 1e-6)

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.speed if self.speed > 0 else None


def fetch(
    remote: RemoteFile,
    blobs: BlobStore,
    on_progress: Callable[[Progress], None] | None = None,
    connections: int = CONNECTIONS,
    part_size: int = PART_SIZE,
    client: Any = None,
    retries: int = RETRIES,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> Blob:
    """Download `remote` into `blobs` (or find it there); returns the verified blob."""
    if remote.digest and blobs.has(remote.digest):
        return Blob(remote.digest, remote.size, "present")
    blobs.root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(blobs.root / f"{remote.key}.lock")):
        if remote.digest and blobs.has(remote.digest):  # another pull finished it meanwhile
            return Blob(remote.digest, remote.size, "present")
        job = _Job(
            remote, blobs.root, part_size, on_progress, _session(client), read_timeout_s, retries
        )
        job.run(connections)
        digest = job.verify_and_publish(blobs)
    return Blob(digest, remote.size, "download")


def _session(client: Any) -> Any:
    if client is not None:
        return client
    from huggingface_hub import get_session

    return get_session()


class _Job:
    def __init__(
        self,
        remote: RemoteFile,
        root: Path,
        part_size: int,
        on_progress: Callable[[Progress], None] | None,
        client: Any,
        read_timeout_s: float,
        retries: int,
    ) -> None:
        self.remote, self.client, self.retries = remote, client, retries
        self.timeout = read_timeout_s
        self.partial = root / f"{remote.key}.partial"
        self.state = root / f"{remote.key}.partial.json"
        self.part_size = part_size
        self.n_parts = max(1, -(-remote.size // part_size))
        self.lock = threading.Lock()
        self.on_progress = on_progress
        self.done = self._load_state()
        self.progress = Progress(total=remote.size)
        self.progress.done = self.progress.resumed = sum(self._length(i) for i in self.done)

    def _length(self, part: int) -> int:
        return min(self.part_size, self.remote.size - part * self.part_size)

    def _load_state(self) -> set[int]:
        try:
            data = json.loads(self.state.read_text())
            same = data["size"] == self.remote.size and data["part_size"] == self.part_size
            if same and self.partial.stat().st_size == self.remote.size:
                return {int(i) for i in data["done"] if 0 <= int(i) < self.n_parts}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self._reset()
        return set()

    def _reset(self) -> None:
        try:
            with self.partial.open("wb") as f:
                f.truncate(self.remote.size)
        except OSError as exc:
            raise storage_error(exc, self.partial) from None
        self.state.unlink(missing_ok=True)

    def _save_state(self) -> None:
        data = {"size": self.remote.size, "part_size": self.part_size, "done": sorted(self.done)}
        atomic_write(self.state, json.dumps(data).encode())

    def run(self, connections: int) -> None:
        todo = [i for i in range(self.n_parts) if i not in self.done]
        pool = ThreadPoolExecutor(max_workers=max(1, connections))
        try:
            for future in [pool.submit(self._part, i) for i in todo]:
                future.result()
        except _NoRanges:
            pool.shutdown(cancel_futures=True)
            self._single_stream()
        finally:
            pool.shutdown(cancel_futures=True)

    def _part(self, part: int) -> None:
        start = part * self.part_size
        end = start + self._length(part) - 1
        cursor = [start]  # a retry asks only for what the dropped attempt did not write
        self._with_retries(lambda: self._get(cursor[0], end, ranged=True, cursor=cursor))
        with self.lock:
            self.done.add(part)
            self._save_state()

    def _single_stream(self) -> None:
        """The server ignores ranges: one stream from the start, as often as it takes."""
        with self.lock:
            self.done.clear()
            self.progress.done = 0
            self._reset()
        self._with_retries(lambda: self._get(0, self.remote.size - 1, ranged=False))

    def _with_retries(self, attempt: Callable[[], None]) -> None:
        for n in range(self.retries + 1):
            try:
                attempt()
                return
            except (_NoRanges, LocalLLMError):
                raise  # no range support, access denied, disk full: retrying cannot help
            except Exception as exc:  # dropped, stalled, refused, short: try again
                if n == self.retries:
                    why = f"{type(exc).__name__}: {exc}"
                    raise DownloadError(f"{self.remote.url}: {why}; pull again to resume") from None
            time.sleep(min(0.2 * 2**n, 8.0))

    def _get(self, start: int, end: int, ranged: bool, cursor: list[int] | None = None) -> None:
        """Write bytes start..end; `cursor[0]` follows the bytes written, so a failed
        attempt's bytes stay and count (without a cursor they are fetched again)."""
        headers = dict(self.remote.headers)
        if ranged:
            headers["Range"] = f"bytes={start}-{end}"
        written = 0
        with self.client.stream("GET", self.remote.url, headers=headers, timeout=self.timeout) as r:
            if r.status_code in (401, 403):
                raise _Fatal(
                    f"{self.remote.url}: access denied (HTTP {r.status_code}). Accept the model's "
                    "license on its Hugging Face page and log in (`hf auth login`) or set HF_TOKEN"
                )
            if r.status_code == 404:
                raise _Fatal(f"{self.remote.url}: not found (HTTP 404)")
            if ranged and r.status_code == 200:
                raise _NoRanges()
            if r.status_code not in (200, 206):
                raise OSError(f"HTTP {r.status_code}")
            fd = os.open(self.partial, os.O_WRONLY)
            try:
                for chunk in r.iter_bytes():
                    if written + len(chunk) > end - start + 1:
                        raise OSError("the server sent more bytes than asked for")
                    try:
                        os.pwrite(fd, chunk, start + written)
                    except OSError as exc:
                        raise storage_error(exc, self.partial) from None
                    written += len(chunk)
                    if cursor is not None:
                        cursor[0] = start + written
                    self._advance(len(chunk))
                if written != end - start + 1:
                    raise OSError(f"connection ended after {written} of {end - start + 1} bytes")
                os.fsync(fd)
            finally:
                os.close(fd)
                if written != end - start + 1 and cursor is None:
                    self._advance(-written, refetch=True)

    def _advance(self, n: int, refetch: bool = False) -> None:
        with self.lock:
            self.progress.done += n
            if not refetch:
                self.progress.fetched += n
            if self.on_progress is not None:
                self.on_progress(self.progress)

    def verify_and_publish(self, blobs: BlobStore) -> str:
        """Check the sha256 (when known) and move the file to its blob name."""
        digest = hashlib.sha256()
        with self.partial.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        if self.remote.sha256 is not None and digest.hexdigest() != self.remote.sha256:
            self.partial.unlink(missing_ok=True)
            self.state.unlink(missing_ok=True)
            got, want = digest.hexdigest()[:12], self.remote.sha256[:12]
            raise DownloadError(
                f"{self.remote.url}: the downloaded data does not match its sha256 ({got}... "
                f"instead of {want}...); it was deleted, run the pull again"
            )
        target = blobs.path(f"sha256-{digest.hexdigest()}")
        self.partial.replace(target)
        self.state.unlink(missing_ok=True)
        fsync_dir(target.parent)
        return target.name
