"""RPC workers (`localllm worker`) as real processes on loopback ports: a model split
across two of them and the local CPU gives the tokens it gives in one process; a
worker killed mid-stream ends that stream with an error naming it, the next request
is planned without it, and it is used again once it is back."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings
from localllm.remote import rpc
from localllm.remote.workers import BadEndpoint, answers, ask, parse_endpoint, parse_endpoints
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import BUDGET, Running, add_model

GREEDY = Sampling(temperature=0, num_predict=24, repeat_penalty=1.0)
needs_rpc = pytest.mark.skipif(not rpc.available(), reason="llama.cpp built without -DGGML_RPC=ON")


def test_worker_addresses_are_checked() -> None:
    assert parse_endpoint("10.0.0.2") == "10.0.0.2:50052"
    assert parse_endpoint(" box:6000 ") == "box:6000"
    assert parse_endpoint("[::1]:7000") == "[::1]:7000"
    assert parse_endpoints("a:1, b:2,a:1,") == ("a:1", "b:2")
    for bad in ("host:port", "host:70000", ":5000", "localhost:", "[::1]:"):
        with pytest.raises(BadEndpoint, match="worker address"):
            parse_endpoint(bad)


def test_a_worker_beyond_loopback_needs_insecure(capsys: pytest.CaptureFixture[str]) -> None:
    from localllm.cli import main

    assert main(["worker", "--listen", "0.0.0.0:50052"]) == 1
    err = capsys.readouterr().err
    assert "--insecure" in err and "no authentication" in err and "SSH tunnel" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    def __init__(self, tmp: Path) -> None:
        self.endpoint = f"127.0.0.1:{_free_port()}"
        self.log = tmp / f"worker-{self.endpoint.rsplit(':', 1)[1]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localllm", "worker", "--listen", self.endpoint,
                 "--no-cache", "--threads", "1"],
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not answers(self.endpoint):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker did not start listening"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    made = [Worker(tmp_path).start(), Worker(tmp_path).start()]
    yield made
    for w in made:
        w.kill()


def answer(model: LlamaModel, prompt: str) -> str:
    engine = Engine(model)
    try:
        engine.submit(Generate(1, prompt=prompt, sampling=GREEDY))
        text = ""
        while engine.busy:
            text += "".join(e.text for e in engine.step() if isinstance(e, Piece))
        return text
    finally:
        engine.close()


pytestmark = [pytest.mark.slow]


@needs_rpc
def test_a_split_across_two_workers_gives_the_same_tokens(
    workers: list[Worker], tiny_files: dict[str, Path]
) -> None:
    path = [str(tiny_files["tiny"])]
    alone = LlamaModel(path, LoadSettings(n_gpu_layers=0, n_ctx=512, n_threads=1), ())
    try:
        expected = answer(alone, "Once upon a time")
    finally:
        alone.close()
    endpoints = tuple(w.endpoint for w in workers)
    states = ask(endpoints)
    assert [s.up for s in states] == [True, True]
    assert all(s.devices[0].total > 0 for s in states)
    settings = LoadSettings(n_gpu_layers=99, n_ctx=512, n_threads=1, workers=endpoints,
                            tensor_split=(1.0, 1.0))  # fmt: skip
    split = LlamaModel(path, settings, (), keep_log=None)
    try:
        log = "".join(split.log)
        assert answer(split, "Once upon a time") == expected
    finally:
        split.close()
    for endpoint in endpoints:  # each worker holds layers, the token embeddings stay here
        assert f"[{endpoint}] model buffer size" in log
    assert "CPU_Mapped model buffer size" in log or "CPU model buffer size" in log


@needs_rpc
@pytest.mark.parametrize("flash_attn", [False, True])
def test_each_worker_holds_what_the_planner_predicts(
    workers: list[Worker], tiny_files: dict[str, Path], flash_attn: bool
) -> None:
    from localllm.gguf.local import read_local
    from localllm.planner.memory import GpuTarget, estimate

    endpoints = tuple(w.endpoint for w in workers)
    path = tiny_files["slow"]
    settings = LoadSettings(n_gpu_layers=99, n_ctx=4096, n_threads=1, workers=endpoints,
                            tensor_split=(1.0, 1.0), flash_attn=flash_attn)  # fmt: skip
    split = LlamaModel([str(path)], settings, (), keep_log=None)
    log = "".join(split.log)
    split.close()
    assert "pipeline parallelism enabled" in log
    planned = estimate(read_local(path), settings, [GpuTarget(100, "rpc"), GpuTarget(101, "rpc")])
    for endpoint, use in zip(endpoints, planned.gpus, strict=True):
        reported = {
            kind: float(mib) * (1 << 20)
            for kind, mib in re.findall(
                rf"\[{re.escape(endpoint)}\] (model|KV|compute) buffer size = +([\d.]+) MiB", log
            )
        }
        expected = {"model": use.weights, "KV": use.kv, "compute": use.compute}
        for kind, size in expected.items():
            assert reported[kind] == pytest.approx(size, rel=0.02, abs=256 << 10), kind


@pytest.fixture
def rpc_store(store: Store, tiny_files: dict[str, Path]) -> Store:
    add_model(store, "slow", tiny_files["slow"], "PARAMETER num_ctx 8192\n")
    return store


SMALL = replace(BUDGET, ram_usable=100 << 20)
"""Too little RAM for the slow model at 8,192 tokens here (~200 MiB), enough for what it
keeps here when its layers are on one or two workers (~20 and ~55 MiB)."""
GREEDY_BODY = {"model": "slow", "prompt": "Once upon a time", "stream": False,
               "options": {"num_predict": 16, "temperature": 0}}  # fmt: skip


def _unload(server: Running, model: str) -> None:
    httpx.post(server.url + "/api/generate", json={"model": model, "keep_alive": 0}, timeout=60)


@needs_rpc
def test_a_worker_that_goes_away_is_named_then_planned_without_then_used_again(
    workers: list[Worker], rpc_store: Store, make_server: Callable[..., Running]
) -> None:
    endpoints = tuple(w.endpoint for w in workers)
    one_slot = ServerSettings(port=0, num_parallel=1)
    plain = make_server(rpc_store, one_slot)
    server = make_server(rpc_store, replace(one_slot, workers=endpoints), SMALL)
    here = httpx.post(plain.url + "/api/generate", json=GREEDY_BODY, timeout=60).json()
    split = httpx.post(server.url + "/api/generate", json=GREEDY_BODY, timeout=60)
    assert split.status_code == 200 and split.json()["response"] == here["response"]
    assert server.scheduler.slots["slow:latest"].runner.load_request.settings.workers == endpoints
    _unload(server, "slow")

    long = {"model": "slow", "prompt": "go", "options": {"num_predict": 8000, "temperature": 1}}
    lines: list[str] = []
    with httpx.stream("POST", server.url + "/api/generate", json=long, timeout=120) as response:
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 2:
                workers[0].kill()
    error = json.loads(lines[-1]).get("error", "")
    assert f"RPC worker at {workers[0].endpoint} stopped answering" in error

    again = httpx.post(server.url + "/api/generate", json=GREEDY_BODY, timeout=60)
    assert again.status_code == 200 and again.json()["response"] == here["response"]
    used = server.scheduler.slots["slow:latest"].runner.load_request.settings.workers
    assert used == (workers[1].endpoint,)
    assert not server.scheduler.workers[workers[0].endpoint].up

    workers[0].start()  # back on the same port
    _unload(server, "slow")
    back = httpx.post(server.url + "/api/generate", json=GREEDY_BODY, timeout=60)
    assert back.status_code == 200 and back.json()["response"] == here["response"]
    assert server.scheduler.slots["slow:latest"].runner.load_request.settings.workers == endpoints


@needs_rpc
def test_a_model_that_fits_here_stays_here(
    workers: list[Worker], store: Store, make_server: Callable[..., Running]
) -> None:
    # The tiny model fits this machine's RAM: across the workers each token would only
    # pay the hops.
    endpoints = tuple(w.endpoint for w in workers)
    server = make_server(store, ServerSettings(port=0, workers=endpoints))
    body = {**GREEDY_BODY, "model": "tiny"}
    assert httpx.post(server.url + "/api/generate", json=body, timeout=60).status_code == 200
    assert server.scheduler.slots["tiny:latest"].runner.load_request.settings.workers == ()


def test_bad_worker_addresses_in_the_environment_name_the_variable() -> None:
    from localllm.errors import ConfigError
    from localllm.server.settings import settings_from_env

    assert settings_from_env({"LOCALLLM_WORKERS": "a:1,b"}).workers == ("a:1", "b:50052")
    assert settings_from_env({"LOCALLLM_WORKERS": "a:1"}, workers="c:3").workers == ("c:3",)
    with pytest.raises(ConfigError, match="LOCALLLM_WORKERS: worker address 'a:x'"):
        settings_from_env({"LOCALLLM_WORKERS": "a:x"})


@needs_rpc
def test_plan_shows_the_placement_per_host_before_a_download(
    workers: list[Worker], tiny_files: dict[str, Path]
) -> None:
    from tests.cli.test_plan import _plan

    endpoints = [w.endpoint for w in workers]
    down = f"127.0.0.1:{_free_port()}"
    # What if this machine had 1.2 GB of RAM: ~80 MiB usable, too little for the slow
    # model at 8,192 tokens, which then goes across the workers.
    args = (str(tiny_files["slow"]), "--ram", "1.2G", "--ctx", "8192",
            "--workers", ",".join([*endpoints, down]))  # fmt: skip
    done = _plan(*args, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    placed = result["choice"]["placement"]
    assert [p["host"] for p in placed] == [*endpoints, "this machine"]
    assert sum(p["layers"] for p in placed[:2]) == 8  # the blocks (the output layer: the last)
    assert placed[2]["layers"] == 0 and all(p["bytes"] > 0 for p in placed)
    assert result["explanation"][0] == (
        "Planned across the workers: the model does not fit on this machine alone."
    )
    shown = _plan(*args)
    assert "Placement:" in shown.stdout and f"{endpoints[0]} device 0: 5 layers" in shown.stdout
    assert "The network adds 2 hops per token to 2 workers" in shown.stdout
    assert f"worker {down}: not listening" in shown.stderr
    alone = _plan(str(tiny_files["tiny"]), "--workers", ",".join(endpoints), "--json")
    assert alone.returncode == 0, alone.stderr
    alone_result = json.loads(alone.stdout)
    assert [p["host"] for p in alone_result["choice"]["placement"]] == ["this machine"]
    assert alone_result["explanation"][0].startswith("Planned on this machine alone")


@needs_rpc
def test_ps_shows_the_hosts_and_the_workers_health(
    workers: list[Worker], rpc_store: Store, make_server: Callable[..., Running]
) -> None:
    import ollama

    endpoints = tuple(w.endpoint for w in workers)
    server = make_server(rpc_store, ServerSettings(port=0, workers=endpoints, num_parallel=1),
                         SMALL)  # fmt: skip
    ollama.Client(host=server.url).generate("slow", "hi", options={"num_predict": 2})
    report = httpx.get(server.url + "/api/ps", timeout=30).json()
    (model,) = report["models"]
    assert [p["host"] for p in model["placement"]] == [*endpoints, "this machine"]
    assert model["size_vram"] == 0  # no GPU of this machine holds any of it
    health = {w["endpoint"]: w for w in report["workers"]}
    assert all(health[e]["listening"] and health[e]["model"] == "slow:latest" for e in endpoints)
    workers[1].kill()
    health = {
        w["endpoint"]: w for w in httpx.get(server.url + "/api/ps", timeout=30).json()["workers"]
    }
    assert not health[endpoints[1]]["listening"]
