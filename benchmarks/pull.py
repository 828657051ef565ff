"""Download throughput and resume cost of localllm's downloader, over loopback.

    python benchmarks/pull.py [--mib 256]

Serves a file of random bytes from the test suite's fake Hub on 127.0.0.1 and
downloads it into a fresh blob store:

- one connection, one request (a plain single-stream download) against four
  connections with 16 MiB parts; once at full loopback speed, once with each
  connection capped (as CDNs cap a single stream);
- the bytes fetched again after a connection dropped mid-file, and after the
  downloading process was killed with SIGKILL and the pull run again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localllm.store.blobs import BlobStore
from localllm.store.download import PART_SIZE, RemoteFile, fetch
from tests.fakehub import FakeHub, serve

MIB = 1 << 20
CHILD = """
import sys
from pathlib import Path
from localllm.store.blobs import BlobStore
from localllm.store.download import RemoteFile, fetch
url, size, sha, root = sys.argv[1:5]
fetch(RemoteFile(url, int(size), sha), BlobStore(Path(root)))
"""


def timed_fetch(hub: FakeHub, remote: RemoteFile, work: Path, connections: int, part: int) -> float:
    store = BlobStore(Path(tempfile.mkdtemp(dir=work)))
    start = time.perf_counter()
    fetch(remote, store, connections=connections, part_size=part)
    return remote.size / MIB / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        payload = work / "model.gguf"
        payload.write_bytes(os.urandom(args.mib * MIB))
        sha = hashlib.sha256(payload.read_bytes()).hexdigest()
        hub = FakeHub()
        hub.add("bench/m-GGUF", "model.gguf", payload, sha256=sha)
        with serve(hub):
            remote = RemoteFile(
                f"{hub.url}/bench/m-GGUF/resolve/main/model.gguf", payload.stat().st_size, sha
            )
            print(f"file: {args.mib} MiB over loopback, 2-core machine\n")
            print("| network | single stream MiB/s | 4 connections MiB/s | ratio |")
            print("|---|---|---|---|")
            for label, throttle in (
                ("loopback, uncapped", 0.0),
                ("each connection capped at ~32 MiB/s", 0.002),
            ):
                hub.throttle_s = throttle
                single = timed_fetch(hub, remote, work, 1, remote.size)
                parallel = timed_fetch(hub, remote, work, 4, PART_SIZE)
                print(
                    f"| {label} | {single:.0f} | {parallel:.0f} | {parallel / single:.2f}x |",
                    flush=True,
                )
            hub.throttle_s = 0.0

            print("\n| interruption | bytes fetched again | parts in flight (16 MiB each) |")
            print("|---|---|---|")
            hub.log.clear()
            hub.drop_after, hub.drops = 5 * MIB, 1
            fetch(remote, BlobStore(Path(tempfile.mkdtemp(dir=work))))
            hub.drop_after = None
            again = (hub.bytes_sent() - remote.size) / MIB
            print(f"| connection dropped after 5 MiB | {again:.1f} MiB | 1 |")

            hub.log.clear()
            hub.throttle_s = 0.002
            root = Path(tempfile.mkdtemp(dir=work))
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, remote.url, str(remote.size), sha, str(root)]
            )
            state = root / f"sha256-{sha}.partial.json"
            while not (
                state.exists() and len(json.loads(state.read_text() or "{}").get("done", [])) >= 2
            ):
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            hub.throttle_s = 0.0
            done = len(json.loads(state.read_text())["done"])
            time.sleep(0.5)  # let the server finish logging the killed connections
            fetch(remote, BlobStore(root))
            refetched = hub.bytes_sent() - remote.size
            killed = f"process killed (SIGKILL) with {done} parts done"
            print(f"| {killed} | {refetched / MIB:.1f} MiB | 4 |")


if __name__ == "__main__":
    main()
