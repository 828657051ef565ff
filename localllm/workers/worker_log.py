"""A model worker's log: what the worker (and llama.cpp inside it) writes to its stdout
and stderr, through a pipe, into `<logs>/runners/<model>.log`, rotated by size.

llama.cpp writes to the file descriptor itself, so the server reads the pipe on a
thread and does the writing: the file is rotated when it passes `MAX_BYTES`
(`.log.1`, `.log.2` keep the older text), and the last `TAIL_BYTES` this worker wrote
are kept in memory, so the reason given for a worker's death is its own last lines,
never those of an earlier worker of the same model in the same file.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

MAX_BYTES = 8 << 20
BACKUPS = 2
TAIL_BYTES = 16 << 10


class WorkerLog:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._tail = bytearray()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._read_fd, self.fd = os.pipe()
        """The end the worker writes to (its stdout and stderr); close it once spawned."""
        self._thread = threading.Thread(target=self._pump, name=f"log {path.name}", daemon=True)
        self._thread.start()

    def spawned(self) -> None:
        """The worker has its copy of the pipe: the server's is closed, so the pipe ends
        (and the thread with it) when the worker exits."""
        os.close(self.fd)

    def tail(self) -> str:
        """The last lines this worker wrote."""
        with self._lock:
            return bytes(self._tail).decode(errors="replace")

    def wait(self, timeout: float = 5.0) -> None:
        """Until everything the worker wrote has been read (it has exited)."""
        self._thread.join(timeout)

    def _pump(self) -> None:
        out = self.path.open("ab")
        try:
            while data := os.read(self._read_fd, 65536):
                with self._lock:
                    self._tail += data
                    del self._tail[: max(0, len(self._tail) - TAIL_BYTES)]
                out.write(data)
                out.flush()
                if out.tell() >= self.max_bytes:
                    out.close()
                    self._rotate()
                    out = self.path.open("ab")
        except OSError:
            pass
        finally:
            out.close()
            with contextlib.suppress(OSError):
                os.close(self._read_fd)

    def _rotate(self) -> None:
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
