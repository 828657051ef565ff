"""Concurrent requests to one model through the real server: batched in one worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import ollama

from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import Running

OPTIONS = {"temperature": 0, "seed": 3, "num_predict": 32}
PROMPTS = [f"Tell me about item {i}." for i in range(4)]


async def _chat(client: ollama.AsyncClient, prompt: str) -> str:
    parts = []
    stream = await client.chat(
        "tiny", messages=[{"role": "user", "content": prompt}], options=OPTIONS, stream=True
    )
    async for chunk in stream:
        parts.append(chunk.message.content or "")
    return "".join(parts)


def test_concurrent_streams_give_what_each_gives_alone(server: Running) -> None:
    async def both() -> tuple[list[str], list[str]]:
        client = ollama.AsyncClient(host=server.url)
        alone = [await _chat(client, p) for p in PROMPTS]
        server.scheduler.unload("tiny:latest")  # nothing cached: every prompt runs again
        together = await asyncio.gather(*(_chat(client, p) for p in PROMPTS))
        return alone, list(together)

    alone, together = asyncio.run(both())
    assert together == alone
    assert all(alone)
    [runner] = [s.runner for s in server.scheduler.slots.values()]
    assert runner.parallel == 4 and runner.in_flight == 0


def test_cancelling_one_stream_leaves_the_others_intact(server: Running) -> None:
    async def run() -> tuple[str, list[str]]:
        client = ollama.AsyncClient(host=server.url)
        expected = await _chat(client, PROMPTS[0])

        async def dropped() -> None:
            async with httpx.AsyncClient(timeout=60) as http:
                body = {"model": "tiny", "prompt": "x", "options": {"num_predict": 4000}}
                async with http.stream("POST", server.url + "/api/generate", json=body) as r:
                    async for _ in r.aiter_lines():
                        return  # the client goes away after the first token

        results = await asyncio.gather(
            _chat(client, PROMPTS[0]), dropped(), _chat(client, PROMPTS[0])
        )
        return expected, [results[0], results[2]]

    expected, survivors = asyncio.run(run())
    assert survivors == [expected, expected]


def test_a_burst_past_the_queue_gets_503s_and_the_rest_completes(
    make_server: Callable[..., Running], store: Store
) -> None:
    server = make_server(store, ServerSettings(port=0, max_queue=2, num_parallel=2))
    ollama.Client(host=server.url).generate("tiny", "warm", options={"num_predict": 1})

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as http:
            body = {"model": "tiny", "prompt": "go", "stream": False,
                    "options": {"num_predict": 500, "ignore_eos": True}}  # fmt: skip
            return await asyncio.gather(
                *(http.post(server.url + "/api/generate", json=body) for _ in range(10))
            )

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 4 and set(codes) <= {200, 503}, codes
    assert 503 in codes
    for r in responses:
        if r.status_code == 200:
            assert r.json()["eval_count"] == 500
        else:
            assert r.headers["retry-after"] == "5" and "LOCALLLM_MAX_QUEUE" in r.json()["error"]
    after = ollama.Client(host=server.url).generate(
        "tiny", "again", options={"num_predict": 3, "ignore_eos": True}
    )
    assert after.eval_count == 3
