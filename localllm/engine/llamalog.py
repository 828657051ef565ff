"""Route llama.cpp's log lines into Python: load reports, and the reason a load failed."""

from __future__ import annotations

import ctypes
import sys
from collections import deque

_KEEP_ALIVE: list[object] = []


def capture_log(keep: int | None = None, echo: bool = False) -> deque[str]:
    """The lines llama.cpp logs from now on (the last `keep` of them), also written
    to stderr with `echo` (a worker's stderr is its log file)."""
    import llama_cpp

    lines: deque[str] = deque(maxlen=keep)

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def collect(level: int, text: bytes, user: object) -> None:
        line = text.decode(errors="replace")
        lines.append(line)
        if echo:
            sys.stderr.write(line)

    _KEEP_ALIVE.append(collect)  # ctypes must keep the callback object alive
    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    return lines


def last_reason(lines: list[str] | deque[str]) -> str:
    """llama.cpp's last words: the line that says why it gave up."""
    stripped = [line.strip() for line in "".join(lines).splitlines() if line.strip()]
    for line in reversed(stripped):
        lower = line.lower()
        if "error" in lower or "failed" in lower or "does not" in lower:
            return line
    return stripped[-1] if stripped else "no reason given"


def crash_reason(output: str) -> str:
    """The line of a dead process's output that says why: llama.cpp's GGML_ASSERT or
    error line, not the debugger backtrace it prints after it."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for marker in ("GGML_ASSERT", "error", "Error", "Killed", "failed"):
        for line in reversed(lines):
            if marker in line:
                return line
    return lines[-1] if lines else "no output"


def route_mtmd_log() -> None:
    """Send libmtmd's log (the projector's load report and errors) where llama.cpp's
    goes, to the callback `capture_log` set last."""
    if not _KEEP_ALIVE:
        return
    from llama_cpp import mtmd_cpp

    mtmd_cpp.mtmd_log_set(_KEEP_ALIVE[-1], ctypes.c_void_p(0))
