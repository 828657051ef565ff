"""`localllm bench` against a real background server and a generated model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localllm.store.store import Store
from tests.cli.test_server_cli import free_port, servers_on
from tests.live_server import add_model

pytestmark = pytest.mark.slow


def test_bench_reports_prompt_decode_and_the_ceiling(
    localllm_home: Path, tiny_files: dict[str, Path]
) -> None:
    store = Store(localllm_home / "data" / "models")
    add_model(store, "tiny", tiny_files["tiny"], "PARAMETER num_ctx 512\n")
    port = free_port()
    env = {**os.environ, "LOCALLLM_HOST": f"127.0.0.1:{port}"}
    cli = [sys.executable, "-m", "localllm", "bench"]
    try:
        out = subprocess.run([*cli, "tiny", "-p", "64", "-n", "16", "-r", "2", "--json"],
                             env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert abs(result["prompt_tokens"] - 64) <= 8  # calibrated through the server
        assert result["gen_tokens"] == 16 and result["repetitions"] == 2
        for key in ("prompt_tokens_per_s", "decode_tokens_per_s", "time_to_first_token_s"):
            s = result[key]
            assert 0 < s["min"] <= s["median"] <= s["max"]
        ceiling = result["ceiling"]
        assert ceiling["ram_gbs"] > 0 and ceiling["ram_bytes_per_token"] > 0
        assert result["of_ceiling"] == pytest.approx(
            result["decode_tokens_per_s"]["median"] / ceiling["tokens_per_s"]
        )

        table = subprocess.run([*cli, "tiny", "-p", "32", "-n", "8", "-r", "1"],
                               env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
        assert table.returncode == 0, table.stderr
        assert "tg8" in table.stdout and "decode ceiling" in table.stdout

        # a model that is its own draft (no penalties, which the draft does not apply):
        # every guess is taken, several tokens per pass
        tiny = tiny_files["tiny"]
        add_model(store, "self", tiny, f"PARAMETER repeat_penalty 1\nDRAFT {tiny}\n")
        out = subprocess.run([*cli, "self", "-p", "32", "-n", "24", "-r", "1", "--json"],
                             env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
        assert out.returncode == 0, out.stderr
        drafted = json.loads(out.stdout)
        assert drafted["drafted"] > 0 and drafted["acceptance"] == 1.0
        assert drafted["tokens_per_pass"] > 1

        missing = subprocess.run([*cli, "nope"], env=env, capture_output=True, text=True,
                                 timeout=60)  # fmt: skip
        assert missing.returncode == 1 and "nope" in missing.stderr
        assert "Traceback" not in missing.stderr
    finally:
        for pid in servers_on(port):
            os.kill(pid, signal.SIGTERM)
