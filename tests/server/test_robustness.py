"""What a local server must survive: bad requests, hostile pages, dying workers,
impatient clients, too many requests, and models that do not fit together."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from localllm.planner.memory import estimate
from localllm.server.settings import ServerSettings
from localllm.store.names import parse_name
from localllm.store.store import Store
from localllm.workers.loading import plan_load
from tests.live_server import BUDGET, Running, add_model

pytestmark = pytest.mark.slow
CHAT = {
    "model": "tiny",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": False,
    "options": {"num_predict": 4},
}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/chat", b"{not json", 400, "not valid JSON"),
        ("/api/chat", b"", 400, "empty"),
        ("/api/chat", b'{"model": "tiny", "messages": "hi"}', 400, "messages"),
        (
            "/api/chat",
            b'{"model": "tiny", "messages": [], "options": {"temperature": "hot"}}',
            400,
            "options.temperature",
        ),
        ("/api/generate", b'{"model": 5}', 400, "model"),
        ("/api/generate", b'{"model": "nope:1b", "prompt": "x"}', 404, "not found"),
        ("/api/generate", b'{"model": "../etc", "prompt": "x"}', 400, "name"),
        (
            "/api/generate",
            b'{"model": "tiny", "prompt": "x", "keep_alive": "soon"}',
            400,
            "keep_alive",
        ),
        (
            "/api/generate",
            b'{"model": "tiny", "prompt": "x", "format": {"type": 5}}',
            400,
            "schema",
        ),
        ("/api/embed", b'{"model": "tiny", "input": [1, 2]}', 400, "input"),
        ("/v1/chat/completions", b'{"model": "tiny", "messages": []}', 400, "messages"),
        ("/v1/chat/completions", b"[1, 2]", 400, "invalid request"),
        ("/api/nothing", b"{}", 404, "no route"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(
    server: Running, path: str, body: bytes, status: int, words: str
) -> None:
    response = httpx.post(server.url + path, content=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    text = error["message"] if isinstance(error, dict) else error
    assert words.lower() in text.lower()


def test_prompt_longer_than_context_is_400_unless_truncation_asked(server: Running) -> None:
    long = "word " * 3000  # ~3000+ tokens with the byte vocabulary; the context is 1024
    body = {"model": "tiny", "prompt": long, "stream": False, "options": {"num_predict": 2}}
    response = httpx.post(server.url + "/api/generate", json=body, timeout=60)
    assert response.status_code == 400
    message = response.json()["error"]
    assert "1024" in message and "tokens" in message
    response = httpx.post(server.url + "/api/generate", json={**body, "truncate": True}, timeout=60)
    assert response.status_code == 200
    assert response.json()["prompt_eval_count"] < 1024


def test_follow_up_turn_reuses_the_cached_prefix(server: Running) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    messages: list[Any] = [
        {"role": "system", "content": "be brief " * 40},
        {"role": "user", "content": "one"},
    ]
    first = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, seed=1)
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "two"},
    ]
    runner = server.scheduler.slots["tiny:latest"].runner
    second = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, seed=1)
    assert server.scheduler.slots["tiny:latest"].runner is runner  # same worker, same cache
    assert first.usage is not None and second.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    # Only the new tokens are computed: the first turn's prompt is served from the cache.
    cached = second.usage.prompt_tokens_details
    assert cached is not None and (cached.cached_tokens or 0) >= first.usage.prompt_tokens - 1


def test_refused_hosts_origins_and_keys(make_server: Callable[..., Running], store: Store) -> None:
    server = make_server(store)
    url = server.url + "/api/version"
    assert httpx.get(url).status_code == 200
    assert httpx.get(url, headers={"Host": "localhost:1234"}).status_code == 200
    rebinding = httpx.get(url, headers={"Host": "evil.example.com"})
    assert rebinding.status_code == 403 and "DNS rebinding" in rebinding.json()["error"]
    page = httpx.post(
        server.url + "/api/chat", json=CHAT, headers={"Origin": "https://evil.example"}
    )
    assert page.status_code == 403 and "LOCALLLM_ORIGINS" in page.json()["error"]
    local_page = httpx.get(url, headers={"Origin": "http://localhost:3000"})
    assert local_page.headers["access-control-allow-origin"] == "http://localhost:3000"
    preflight = httpx.options(
        url, headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200

    keyed = make_server(
        store, ServerSettings(port=0, api_key="s3cret", origins=("https://my.app",))
    )
    url = keyed.url + "/api/version"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    allowed = httpx.get(url, headers={"Authorization": "Bearer s3cret", "Origin": "https://my.app"})
    assert allowed.headers["access-control-allow-origin"] == "https://my.app"


def test_listening_beyond_loopback_needs_a_key() -> None:
    from localllm.errors import ConfigError

    with pytest.raises(ConfigError, match="LOCALLLM_API_KEY"):
        ServerSettings(host="0.0.0.0").check()
    ServerSettings(host="0.0.0.0", api_key="k").check()
    ServerSettings(host="0.0.0.0", insecure=True).check()
    ServerSettings(host="127.0.0.1").check()


def _stream_lines(url: str, body: dict[str, object], lines: list[str], stop_after: int) -> None:
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) >= stop_after:
                return  # leaving the block closes the connection mid-stream


def _slow_store(store: Store, tiny_files: dict[str, Path]) -> None:
    add_model(store, "slow", tiny_files["slow"], "PARAMETER num_ctx 8192\n")


LONG: dict[str, object] = {
    "model": "slow",
    "prompt": "go",
    "options": {"num_predict": 8000, "temperature": 1, "seed": 1, "ignore_eos": True},
}
"""An answer that runs for seconds whatever the model draws (no end token stops it)."""


def test_a_client_that_disconnects_stops_its_generation(
    server: Running, store: Store, tiny_files: dict[str, Path]
) -> None:
    _slow_store(store, tiny_files)
    lines: list[str] = []
    _stream_lines(server.url + "/api/generate", LONG, lines, stop_after=3)
    assert len(lines) == 3 and '"done": false' in lines[-1]
    runner = server.scheduler.slots["slow:latest"].runner
    # 8000 tokens would take tens of seconds; cancelled, the model is idle at once
    assert wait_for(lambda: runner.in_flight == 0, timeout=3)
    out = httpx.post(
        server.url + "/api/generate",
        json={**LONG, "stream": False, "options": {"num_predict": 3}},
        timeout=60,
    )
    assert out.status_code == 200 and out.json()["eval_count"] <= 3


def test_queue_full_is_503_with_retry_after(
    make_server: Callable[..., Running], store: Store, tiny_files: dict[str, Path]
) -> None:
    _slow_store(store, tiny_files)
    server = make_server(store, ServerSettings(port=0, max_queue=1, num_parallel=2))
    httpx.post(server.url + "/api/generate", json={"model": "slow"}, timeout=60)  # load it
    runner = server.scheduler.slots["slow:latest"].runner
    assert runner.parallel == 2
    release = threading.Event()

    def hold() -> None:  # a client that keeps reading until released
        with httpx.stream("POST", server.url + "/api/generate", json=LONG, timeout=60) as r:
            for _ in r.iter_lines():
                if release.is_set():
                    return

    threads = [threading.Thread(target=hold) for _ in range(3)]  # two run, one waits
    for t in threads:
        t.start()
    assert wait_for(lambda: runner.in_flight == 3)
    refused = httpx.post(server.url + "/api/generate", json={**LONG, "stream": False}, timeout=30)
    release.set()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5" and "LOCALLLM_MAX_QUEUE" in refused.json()["error"]
    for t in threads:
        t.join(timeout=60)
    assert wait_for(lambda: runner.in_flight == 0)


def test_keep_alive_zero_unloads_and_the_worker_exits(server: Running) -> None:
    client = ollama.Client(host=server.url)
    client.chat("tiny", messages=[{"role": "user", "content": "x"}], options={"num_predict": 2})
    [loaded] = client.ps().models
    assert loaded.model == "tiny:latest"
    pid = server.scheduler.slots["tiny:latest"].runner.pid
    assert pid is not None
    client.generate("tiny", keep_alive=0)
    assert client.ps().models == []
    assert wait_for(lambda: not _alive(pid))
    client.chat(
        "tiny",
        messages=[{"role": "user", "content": "x"}],
        options={"num_predict": 2},
        keep_alive="300ms",
    )
    assert wait_for(lambda: client.ps().models == [], timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie until reaped
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_two_models_that_do_not_fit_together_evict_the_idle_one(
    make_server: Callable[..., Running], store: Store
) -> None:
    one = plan_load(store.get(parse_name("tiny")), store, BUDGET, None, {}, trial=False)
    # half again what one takes with flash attention's smaller buffers (`flash_attention`)
    with_fa = replace(one.option.settings, flash_attn=True)
    smallest = estimate(one.option.candidate.model, with_fa, (), BUDGET.repack).total
    budget = replace(BUDGET, ram_usable=int(smallest * 1.5))
    server = make_server(store, budget=budget)
    client = ollama.Client(host=server.url)
    client.generate("tiny", "a", options={"num_predict": 2})
    assert [m.model for m in client.ps().models] == ["tiny:latest"]
    client.generate("other", "b", options={"num_predict": 2})
    assert [m.model for m in client.ps().models] == ["other:latest"]

    roomy = make_server(store)
    client = ollama.Client(host=roomy.url)
    client.generate("tiny", "a", options={"num_predict": 2})
    client.generate("other", "b", options={"num_predict": 2})
    assert sorted(str(m.model) for m in client.ps().models) == ["other:latest", "tiny:latest"]


def test_a_worker_that_dies_fails_its_request_and_the_server_goes_on(
    server: Running, store: Store, tiny_files: dict[str, Path]
) -> None:
    _slow_store(store, tiny_files)
    httpx.post(server.url + "/api/generate", json={"model": "slow"}, timeout=60)
    pid = server.scheduler.slots["slow:latest"].runner.pid
    assert pid is not None
    lines: list[str] = []
    with httpx.stream("POST", server.url + "/api/generate", json=LONG, timeout=60) as response:
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 2:
                os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    assert "error" in json.loads(lines[-1]) and "SIGKILL" in json.loads(lines[-1])["error"]
    assert "slow:latest" not in server.scheduler.slots
    again = httpx.post(
        server.url + "/api/generate",
        json={**LONG, "stream": False, "options": {"num_predict": 2}},
        timeout=60,
    )
    assert again.status_code == 200  # reloaded in a new worker


def test_a_model_that_crashes_llama_cpp_is_an_error_not_a_crash(
    server: Running, store: Store, tiny_files: dict[str, Path]
) -> None:
    add_model(store, "broken", tiny_files["broken"])
    response = httpx.post(
        server.url + "/api/generate", json={"model": "broken", "prompt": "x"}, timeout=60
    )
    assert response.status_code == 500
    assert "GGML_ASSERT" in response.json()["error"]
    assert httpx.post(server.url + "/api/chat", json=CHAT, timeout=60).status_code == 200
