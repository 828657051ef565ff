"""Where a step's time goes (`benchmarks/concurrency.py --profile`): the worker's own
totals (`LOCALLLM_PROFILE`) and the CPU seconds of the server, the worker and the
clients, read before and after a level."""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from benchmarks.concurrency import Engine


KEYS = ["tokens_per_step", "step_ms", "admit", "draft", "batch", "decode", "sample", "accept",
        "send", "backend_share", "drafted_per_step", "agreed_share", "ahead_share",
        "worker_cpu_ms_per_token", "server_cpu_ms_per_token",
        "clients_cpu_ms_per_token"]  # fmt: skip
"""The columns of a step profile's table (`profile_between`), in the order printed."""


def _cpu_seconds(proc: psutil.Process, children: bool) -> float:
    try:
        procs = [proc, *(proc.children(recursive=True) if children else [])]
        return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    except psutil.Error:
        return 0.0


def profile_point(engine: Engine, proc: subprocess.Popen[bytes], pool: Any) -> dict[str, Any]:
    """The worker's totals and the CPU seconds of server, worker and clients so far."""
    from localllm.engine.profile import read_last

    time.sleep(1.2)  # the worker writes its totals about once a second
    server = psutil.Process(proc.pid)
    workers = server.children(recursive=True)
    clients = [psutil.Process(p) for p in (pool._processes if pool else {})]
    return {
        "totals": read_last(engine.log.read_text()) if engine.log and engine.log.exists() else None,
        "server": _cpu_seconds(server, children=False),
        "worker": sum(_cpu_seconds(w, children=False) for w in workers),
        "clients": _cpu_seconds(psutil.Process(), children=False)
        + sum(_cpu_seconds(c, children=False) for c in clients),
    }


def profile_between(
    before: dict[str, Any], after: dict[str, Any], wall: float, tokens: int
) -> dict[str, float]:
    from localllm.engine.profile import breakdown

    out: dict[str, float] = {}
    if after["totals"] is not None:
        out = breakdown(before["totals"], after["totals"])
        steps = after["totals"]["steps"] - (before["totals"] or {"steps": 0})["steps"]
        out["step_ms"] = wall / max(steps, 1) * 1e3
    for who in ("worker", "server", "clients"):  # CPU seconds per 1,000 tokens
        out[f"{who}_cpu_ms_per_token"] = (after[who] - before[who]) / max(tokens, 1) * 1e3
    return out
