"""A worker's log (localllm/workers/worker_log.py): rotated by size, and the tail a
death is explained by is this worker's own."""

from __future__ import annotations

import os
import time
from pathlib import Path

from localllm.workers.worker_log import WorkerLog


def test_the_log_rotates_and_keeps_its_own_tail(tmp_path: Path) -> None:
    path = tmp_path / "runners" / "m.log"
    path.parent.mkdir()
    path.write_bytes(b"error: an earlier worker's last words\n")
    log = WorkerLog(path, max_bytes=10_000, backups=2)
    writer = os.dup(log.fd)
    log.spawned()
    for block in range(4):  # 6,000 bytes each: 24,038 in all pass 10,000 twice, not thrice
        end = f"end of block {block}\n" if block < 3 else "GGML_ASSERT(x) failed\n"
        os.write(writer, b"x" * (6_000 - len(end)) + end.encode())
        deadline = time.monotonic() + 60  # read by the log's thread before the next
        while not log.tail().endswith(end):
            assert time.monotonic() < deadline, "the log's thread stopped reading"
            time.sleep(0.001)
    os.close(writer)  # the worker exits
    log.wait()
    assert "earlier worker" not in log.tail() and log.tail().endswith("GGML_ASSERT(x) failed\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.log", "m.log.1", "m.log.2"]
    assert "earlier worker" in path.with_name("m.log.2").read_text()  # kept, rotated away
    newest = path.with_name("m.log.1").read_text() + path.read_text()
    assert newest.endswith("GGML_ASSERT(x) failed\n")
