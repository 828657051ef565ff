"""Worker addresses, what each worker serves, and whether it still answers.

A worker serves one client at a time (llama.cpp's RPC server handles its
connections in turn), so a worker that holds a loaded model is busy: it answers
a TCP connect but not a question. And llama.cpp aborts a process whose RPC peer
does not answer, so the questions go through a child process
(`python -m localllm.remote.workers ENDPOINT...`) with a time limit.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from localllm.errors import LocalLLMError

DEFAULT_PORT = 50052
"""llama.cpp's `rpc-server` default port."""


class BadEndpoint(LocalLLMError):
    """A worker address that is not HOST:PORT."""


@dataclass(frozen=True)
class RemoteDevice:
    endpoint: str
    name: str
    """llama.cpp's name in the process that asked (`RPC0`...): not stable across processes."""
    description: str
    kind: str
    free: int
    total: int
    rtt_s: float = 0.0
    """The network round trip to the worker (its TCP handshake, the best of a few)."""


@dataclass(frozen=True)
class WorkerState:
    endpoint: str
    devices: tuple[RemoteDevice, ...] = ()
    error: str | None = None
    """Why the worker is not usable now (down, busy, no devices), or None."""

    @property
    def up(self) -> bool:
        return self.error is None


def parse_endpoint(text: str) -> str:
    """`host:port` (the port defaults to 50052), checked; IPv6 hosts in brackets."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host:
        raise BadEndpoint(f"worker address {text!r}: expected HOST:PORT, e.g. 10.0.0.2:50052")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadEndpoint(f"worker address {text!r}: {port!r} is not a port number")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_endpoints(text: str | Sequence[str]) -> tuple[str, ...]:
    """A comma-separated list (LOCALLLM_WORKERS) or a list of addresses, without repeats."""
    items = text.split(",") if isinstance(text, str) else [i for t in text for i in t.split(",")]
    out: list[str] = []
    for item in items:
        if item.strip():
            endpoint = parse_endpoint(item)
            if endpoint not in out:
                out.append(endpoint)
    return tuple(out)


def split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def answers(endpoint: str, timeout_s: float = 1.0) -> bool:
    """Whether something listens at `endpoint` (a TCP connect, closed at once)."""
    try:
        with socket.create_connection(split(endpoint), timeout=timeout_s):
            return True
    except OSError:
        return False


def round_trip(endpoint: str, timeout_s: float = 1.0) -> float | None:
    """Seconds for one TCP handshake with `endpoint` (one network round trip: what
    each token waits per worker hop), or None when it does not answer. One connect
    only: the worker takes connections one at a time from a short backlog."""
    start = time.perf_counter()
    try:
        with socket.create_connection(split(endpoint), timeout=timeout_s):
            return time.perf_counter() - start
    except OSError:
        return None


def ask(endpoints: Sequence[str], timeout_s: float = 10.0) -> list[WorkerState]:
    """What each worker serves now, asked from a child process; a worker that does
    not listen is down, one that does not answer in time is busy."""
    states = {e: WorkerState(e, error="not listening (down?)") for e in endpoints}
    for endpoint in endpoints:  # one child each: a busy worker holds up only itself
        rtt = round_trip(endpoint)
        if rtt is not None:
            states[endpoint] = _ask_one(endpoint, timeout_s, rtt)
    return [states[e] for e in endpoints]


def _ask_one(endpoint: str, timeout_s: float, rtt_s: float) -> WorkerState:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "localllm.remote.workers", endpoint],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return WorkerState(
            endpoint, error=f"busy: no answer in {timeout_s:.0f} s (serving a model?)"
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        return WorkerState(endpoint, error=f"did not answer: {last}")
    found = json.loads(lines[-1])
    devices = tuple(RemoteDevice(endpoint=endpoint, rtt_s=rtt_s, **d) for d in found)
    if not devices:
        return WorkerState(endpoint, error="serves no devices")
    return WorkerState(endpoint, devices)


def _main(argv: list[str]) -> int:
    from localllm.remote import rpc

    devices = rpc.connect(argv[0])
    keys = ("name", "description", "kind", "free", "total")
    print(json.dumps([{k: getattr(d, k) for k in keys} for d in devices]))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
