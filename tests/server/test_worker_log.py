"""A worker's log (localllm/server/worker_log.py): rotated by size, and the tail a
death is explained by is this worker's own."""

from __future__ import annotations

import os
from pathlib import Path

from localllm.workers.worker_log import WorkerLog


def test_the_log_rotates_and_keeps_its_own_tail(tmp_path: Path) -> None:
    path = tmp_path / "runners" / "m.log"
    path.parent.mkdir()
    path.write_bytes(b"error: an earlier worker's last words\n")
    log = WorkerLog(path, max_bytes=10_000, backups=2)
    writer = os.dup(log.fd)
    log.spawned()
    for i in range(1000):
        os.write(writer, f"line {i:04d} of this worker\n".encode())
    os.write(writer, b"GGML_ASSERT(x) failed\n")
    os.close(writer)  # the worker exits
    log.wait()
    assert "earlier worker" not in log.tail() and log.tail().endswith("GGML_ASSERT(x) failed\n")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["m.log", "m.log.1", "m.log.2"]
    assert all(p.stat().st_size < 10_000 + 65_536 for p in path.parent.iterdir())  # a read at most
    text = "".join(p.read_text() for p in (path.with_name("m.log.1"), path))
    assert "line 0999" in text and text.endswith("GGML_ASSERT(x) failed\n")
