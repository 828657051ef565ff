"""The downloader against a hub on 127.0.0.1: ranges, failures, resume after kill -9."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.errors import LocalLLMError
from localllm.store.atomic import StoreError
from localllm.store.blobs import BlobStore
from localllm.store.download import DownloadError, Progress, RemoteFile, fetch
from tests.fakehub import FakeHub, serve

SIZE = 5 * (1 << 20) + 12345
PART = 1 << 18  # 256 KiB: many parts for small files


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("payload") / "model.gguf"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def hub(payload: Path) -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.add("acme/m-GGUF", "model.gguf", payload)
    with serve(fake):
        yield fake


def _remote(hub: FakeHub, payload: Path, **headers: str) -> RemoteFile:
    sha = hashlib.sha256(payload.read_bytes()).hexdigest()
    return RemoteFile(f"{hub.url}/acme/m-GGUF/resolve/main/model.gguf", SIZE, sha, headers)


def _part_ranges(parts: list[int]) -> set[str]:
    return {f"bytes={i * PART}-{min((i + 1) * PART, SIZE) - 1}" for i in parts}


def _blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "models" / "blobs")


def test_parallel_ranged_download_verifies_and_reports_progress(
    hub: FakeHub, payload: Path, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    blob = fetch(_remote(hub, payload), _blobs(tmp_path), seen.append, part_size=PART)
    assert blob.how == "download"
    assert _blobs(tmp_path).path(blob.digest).read_bytes() == payload.read_bytes()
    assert seen[-1].done == SIZE and seen[-1].fetched == SIZE and seen[-1].speed > 0
    assert {r.status for r in hub.log} == {206}
    assert hub.bytes_sent() == SIZE
    assert sorted(
        p.name for p in _blobs(tmp_path).root.iterdir() if not p.name.endswith(".lock")
    ) == [blob.digest]
    assert fetch(_remote(hub, payload), _blobs(tmp_path)).how == "present"


def test_dropped_connections_are_retried(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    hub.drop_after, hub.drops = 100_000, 3
    blob = fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART)
    assert _blobs(tmp_path).path(blob.digest).read_bytes() == payload.read_bytes()
    assert hub.bytes_sent() == SIZE  # each retry asked only for the rest of its part


def test_server_ignoring_ranges_restarts_cleanly(
    hub: FakeHub, payload: Path, tmp_path: Path
) -> None:
    hub.ranges = False
    blob = fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART)
    assert _blobs(tmp_path).path(blob.digest).read_bytes() == payload.read_bytes()


def test_wrong_bytes_are_caught_and_discarded(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    hub.corrupt = True
    with pytest.raises(DownloadError, match="does not match its sha256"):
        fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART)
    assert not any(p.name.endswith((".partial", ".json")) for p in _blobs(tmp_path).root.iterdir())
    assert _blobs(tmp_path).digests() == set()


def test_a_stall_times_out_and_is_retried(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    hub.stall_after, hub.stall_s = 65_536, 3.0
    blob = fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART, read_timeout_s=0.5)
    assert _blobs(tmp_path).has(blob.digest)


def test_gated_file_fails_at_once_with_advice(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    hub.gated["acme/m-GGUF"] = "secret"
    with pytest.raises(DownloadError, match="Accept the model's license"):
        fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART)
    ranges = [r.range for r in hub.log]
    assert len(ranges) == len(set(ranges))  # parts already in flight, none retried
    blob = fetch(
        _remote(hub, payload, authorization="Bearer secret"), _blobs(tmp_path), part_size=PART
    )
    assert _blobs(tmp_path).has(blob.digest)


def test_full_disk_keeps_partial_data(
    hub: FakeHub, payload: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = {"n": 0}
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        writes["n"] += 1
        if writes["n"] > 40:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr("os.pwrite", pwrite)  # the edge of the machine: the disk fills up
    with pytest.raises(StoreError, match="disk full"):
        fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART, connections=1)
    state = json.loads(next(_blobs(tmp_path).root.glob("*.partial.json")).read_text())
    assert state["done"]  # what was written before the disk filled is kept
    monkeypatch.setattr("os.pwrite", real_pwrite)
    first = len(hub.log)
    blob = fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART, connections=1)
    assert _blobs(tmp_path).has(blob.digest)
    # the resumed run asks only for the parts that were not on disk
    assert not {r.range for r in hub.log[first:]} & _part_ranges(state["done"])


def test_two_pulls_at_once_share_one_download(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    results: list[str] = []

    def pull() -> None:
        results.append(fetch(_remote(hub, payload), _blobs(tmp_path), part_size=PART).how)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["download", "present"]
    assert hub.bytes_sent() == SIZE


_CHILD = """
import sys
from pathlib import Path
from localllm.store.blobs import BlobStore
from localllm.store.download import RemoteFile, fetch
url, size, sha, root = sys.argv[1:5]
fetch(RemoteFile(url, int(size), sha), BlobStore(Path(root)), part_size=1 << 18, connections=2)
"""


@pytest.mark.slow
def test_kill_9_mid_download_then_resume(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    remote = _remote(hub, payload)
    root = _blobs(tmp_path).root
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, remote.url, str(SIZE), str(remote.sha256), str(root)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    state = root / f"{remote.digest}.partial.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state.exists() and len(json.loads(state.read_text() or "{}").get("done", [])) >= 4:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["done"]
    if len(done) * PART >= SIZE:
        pytest.skip("the child finished before it could be killed")
    first = len(hub.log)
    blob = fetch(remote, _blobs(tmp_path), part_size=PART, connections=2)
    assert _blobs(tmp_path).path(blob.digest).read_bytes() == payload.read_bytes()
    # nothing on disk is fetched again: only the parts in flight at the kill, and the rest
    resumed = {r.range for r in hub.log[first:]}
    assert not resumed & _part_ranges(done)
    assert len(resumed) <= -(-SIZE // PART) - len(done)


def test_errors_are_localllm_errors() -> None:
    assert issubclass(DownloadError, LocalLLMError)


def test_a_bare_url_is_hashed_on_arrival(hub: FakeHub, payload: Path, tmp_path: Path) -> None:
    remote = _remote(hub, payload)
    bare = RemoteFile(remote.url, SIZE, None)
    blob = fetch(bare, _blobs(tmp_path), part_size=PART)
    assert blob.digest == remote.digest  # the same blob as a verified download
    assert _blobs(tmp_path).path(blob.digest).read_bytes() == payload.read_bytes()
