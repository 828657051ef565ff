"""The background server's lifecycle through the real CLI: `serve --stop` ends it
gracefully, and a server of another store is refused with the remedy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from localllm.store.store import Store
from tests.cli.test_server_cli import _exists, free_port, servers_on
from tests.live_server import add_model

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "localllm"]


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_serve_stop_ends_streams_and_workers_then_says_none_runs(
    localllm_home: Path, tiny_files: dict[str, Path], dead_pid: int
) -> None:
    store = Store(localllm_home / "data" / "models")
    add_model(store, "slow", tiny_files["slow"], "PARAMETER num_ctx 8192\n")
    left = store.blobs.root / f".sha256-{'b' * 64}.tmp-{dead_pid}-0123abcd"  # a kill -9's leftover
    left.write_bytes(b"x" * 1000)
    port = free_port()
    env = {**os.environ, "LOCALLLM_HOST": f"127.0.0.1:{port}"}
    assert cli(env, "ps").returncode == 0
    assert not left.exists()  # pruned as the server started
    [server] = servers_on(port)
    record = json.loads((localllm_home / "data" / "server.json").read_text())
    assert record["pid"] == server and record["url"] == f"http://127.0.0.1:{port}"
    try:
        second = cli(env, "serve")  # the port is taken: said plainly, nothing started
        assert second.returncode == 1 and f"pid {server}" in second.stderr, second.stderr
        assert "already answers" in second.stderr and "Traceback" not in second.stderr
        body = {"model": "slow", "prompt": "go", "options": {"num_predict": 8000}}
        lines = []
        url = f"http://127.0.0.1:{port}/api/generate"
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            for line in response.iter_lines():
                lines.append(json.loads(line))
                if len(lines) == 2:
                    [model] = json.loads(cli(env, "ps", "--json").stdout)
                    worker = model["pid"]
                    stopped = cli(env, "serve", "--stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"pid {server}" in stopped.stdout and "stopped" in stopped.stdout
        assert "shutting down" in lines[-1]["error"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _exists(worker):
            time.sleep(0.1)
        assert not _exists(server) and not _exists(worker)
        assert not (localllm_home / "data" / "server.json").exists()
        again = cli(env, "serve", "--stop")
        assert again.returncode == 0 and "no localllm server is running" in again.stdout
    finally:
        if _exists(server):
            os.kill(server, 9)


def test_a_server_of_another_store_is_refused_with_the_remedy(
    localllm_home: Path, tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    port = free_port()
    env_a = {**os.environ, "LOCALLLM_HOST": f"127.0.0.1:{port}"}
    other_home = tmp_path / "other-home"
    env_b = {**env_a, "LOCALLLM_HOME": str(other_home)}
    assert cli(env_a, "ps").returncode == 0
    try:
        modelfile = tmp_path / "Modelfile"
        modelfile.write_text(f"FROM {tiny_files['tiny']}\nPARAMETER num_ctx 512\n")
        created = cli(env_b, "create", "b1", "-f", str(modelfile))
        assert created.returncode == 0, created.stderr  # the CLI writes its own store
        for args in (("bench", "b1", "-n", "4", "-p", "8", "-r", "1"), ("ps",)):
            refused = cli(env_b, *args)
            assert refused.returncode == 1
            message = refused.stderr
            assert str(localllm_home / "data" / "models") in message, message
            assert str(other_home / "data" / "models") in message
            assert "serve --stop" in message and "LOCALLLM_HOST=127.0.0.1:" in message
            assert "Traceback" not in message
        # Nothing of this home's runs, so its --stop says so and leaves the other alone.
        assert "no localllm server" in cli(env_b, "serve", "--stop").stdout
        assert servers_on(port)
    finally:
        cli(env_a, "serve", "--stop")
    assert not servers_on(port)
