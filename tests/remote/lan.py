"""Run inside `unshare -rn` (a user and network namespace of its own): two workers,
each in a network namespace of its own with its own address, joined to this one by
a veth pair, as two hosts on a LAN. Splits MODEL across them and this process and
prints, as JSON, the greedy answers alone and split and what the workers reported.

    unshare -rn python tests/remote/lan.py MODEL.gguf
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from localllm.engine.model import LlamaModel
from localllm.planner.settings import LoadSettings
from localllm.remote.workers import answers, ask
from tests.remote.test_workers import answer

PORT = 50052


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def host(n: int) -> tuple[str, subprocess.Popen[bytes]]:
    """A worker on 10.77.n.2, in a network namespace of its own behind veth pair n."""
    here, there = f"10.77.{n}.1", f"10.77.{n}.2"
    ip("link", "add", f"lan{n}", "type", "veth", "peer", "name", f"eth{n}")
    script = (
        f"read _ && ip link set lo up && ip addr add {there}/24 dev eth{n} && "
        f"ip link set eth{n} up && exec {sys.executable} -m localllm worker "
        f"--listen {there}:{PORT} --insecure --no-cache --threads 1"
    )
    worker = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", script], stdin=subprocess.PIPE, stdout=sys.stderr,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ours, deadline = Path("/proc/self/ns/net").readlink(), time.monotonic() + 10
    while Path(f"/proc/{worker.pid}/ns/net").readlink() == ours:  # not unshared yet
        assert time.monotonic() < deadline, "the worker's namespace did not appear"
        time.sleep(0.01)
    ip("link", "set", f"eth{n}", "netns", str(worker.pid))
    ip("addr", "add", f"{here}/24", "dev", f"lan{n}")
    ip("link", "set", f"lan{n}", "up")
    assert worker.stdin is not None
    worker.stdin.write(b"go\n")
    worker.stdin.close()
    endpoint = f"{there}:{PORT}"
    deadline = time.monotonic() + 30
    while not answers(endpoint):
        assert worker.poll() is None and time.monotonic() < deadline, "worker did not start"
        time.sleep(0.05)
    return endpoint, worker


def main(model: str) -> None:
    ip("link", "set", "lo", "up")
    alone = LlamaModel([model], LoadSettings(n_gpu_layers=0, n_ctx=512, n_threads=1), ())
    try:
        expected = answer(alone, "Once upon a time")
    finally:
        alone.close()
    hosts: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        hosts += [host(1), host(2)]
        endpoints = tuple(e for e, _ in hosts)
        states = ask(endpoints)
        settings = LoadSettings(n_gpu_layers=99, n_ctx=512, n_threads=1, workers=endpoints,
                                tensor_split=(1.0, 1.0))  # fmt: skip
        split = LlamaModel([model], settings, (), keep_log=None)
        try:
            got = answer(split, "Once upon a time")
            log = "".join(split.log)
        finally:
            split.close()
    finally:
        for _, worker in hosts:
            worker.kill()
    print(json.dumps({
        "expected": expected,
        "split": got,
        "up": [s.up for s in states],
        "rtt_s": [s.devices[0].rtt_s if s.devices else None for s in states],
        "held": [f"[{e}] model buffer size" in log for e in endpoints],
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
