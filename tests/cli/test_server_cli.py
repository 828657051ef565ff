"""`localllm ps` / `stop` start the real server in the background; SIGTERM ends it cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from localllm.store.store import Store
from tests.live_server import add_model

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ps_starts_the_server_once_and_sigterm_ends_streams_and_workers(
    localllm_home: Path, tiny_files: dict[str, Path]
) -> None:
    store = Store(localllm_home / "data" / "models")
    add_model(store, "slow", tiny_files["slow"], "PARAMETER num_ctx 8192\n")
    port = free_port()
    env = {**os.environ, "LOCALLLM_HOST": f"127.0.0.1:{port}"}
    cli = [sys.executable, "-m", "localllm"]
    out = subprocess.run([*cli, "ps"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no models loaded" in out.stdout
    server_pids = servers_on(port)
    assert len(server_pids) == 1
    assert (localllm_home / "logs" / "server.log").exists()
    try:
        url = f"http://127.0.0.1:{port}/api/generate"
        body = {"model": "slow", "prompt": "go", "options": {"num_predict": 8000}}
        lines = []
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            for line in response.iter_lines():
                lines.append(json.loads(line))
                if len(lines) == 2:
                    ps = subprocess.run(
                        [*cli, "ps", "--json"], env=env, capture_output=True, text=True, timeout=60
                    )
                    [model] = json.loads(ps.stdout)
                    worker = model["pid"]
                    os.kill(server_pids[0], signal.SIGTERM)
        assert "shutting down" in lines[-1]["error"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_exists(server_pids[0]) or _exists(worker)):
            time.sleep(0.1)
        assert not _exists(server_pids[0]) and not _exists(worker)
    finally:
        for pid in server_pids:
            if _exists(pid):
                os.kill(pid, signal.SIGKILL)


def test_stop_unloads_a_model(localllm_home: Path, tiny_files: dict[str, Path]) -> None:
    store = Store(localllm_home / "data" / "models")
    add_model(store, "tiny", tiny_files["tiny"])
    port = free_port()
    env = {**os.environ, "LOCALLLM_HOST": f"127.0.0.1:{port}"}
    cli = [sys.executable, "-m", "localllm"]
    try:
        subprocess.run([*cli, "ps"], env=env, capture_output=True, timeout=120, check=True)
        httpx.post(f"http://127.0.0.1:{port}/api/generate", json={"model": "tiny"}, timeout=60)
        listed = subprocess.run([*cli, "ps"], env=env, capture_output=True, text=True, timeout=60)
        assert "tiny" in listed.stdout and "100% CPU" in listed.stdout
        stop = subprocess.run(
            [*cli, "stop", "tiny"], env=env, capture_output=True, text=True, timeout=60
        )
        assert stop.returncode == 0 and "stopped" in stop.stdout
        listed = subprocess.run([*cli, "ps"], env=env, capture_output=True, text=True, timeout=60)
        assert "no models loaded" in listed.stdout
        missing = subprocess.run(
            [*cli, "stop", "nope"], env=env, capture_output=True, text=True, timeout=60
        )
        assert missing.returncode == 1 and "not found" in missing.stderr
    finally:
        for pid in servers_on(port):
            os.kill(pid, signal.SIGTERM)


def servers_on(port: int) -> list[int]:
    """The `localllm serve` processes this test started (their LOCALLLM_HOST names `port`)."""
    found = subprocess.run(["pgrep", "-f", "localllm serve"], capture_output=True, text=True)
    pids = []
    for pid in found.stdout.split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"LOCALLLM_HOST=127.0.0.1:{port}".encode() in environ:
            pids.append(int(pid))
    return pids


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
