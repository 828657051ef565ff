"""A scripted event stream (thinking, text, a tool call, the end) encoded by each
dialect, whole and streamed, and a failure after the 200 in each stream, compared
with the reviewed golden wire bytes. Ids and clocks are fixed; no server, no model."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import StreamingResponse

from localllm.dialects.anthropic import encode as anthropic
from localllm.dialects.ollama import encode as ollama
from localllm.dialects.openai import encode as openai
from localllm.dialects.openai.responses import encode as responses
from localllm.dialects.openai.responses.protocol import ResponsesBody
from localllm.dialects.wire import ndjson, sse
from localllm.errors import APIError, ContextOverflow
from localllm.inference.events import Delta, Event, Finished, ToolCall, Usage
from tests.dialects.golden import check, check_json

CALL = ToolCall("weather", {"city": "Zürich", "days": 2}, id="0123456789abcdef01234567")
USAGE = Usage(
    prompt_tokens=9,
    cached_tokens=4,
    output_tokens=7,
    prompt_ns=1_000,
    eval_ns=2_000,
    load_ns=3_000,
    total_ns=7_000,
    drafted=3,
    accepted=2,
    passes=5,
)
FINISHED = Finished("tool_calls", USAGE, "Hi there", "Hmm.", (CALL,))
EVENTS: list[Event] = [
    Delta(thinking="Hm"),
    Delta(thinking="m."),
    Delta("Hi"),
    Delta(" there"),
    Delta(calls=(CALL,)),
    FINISHED,
]
PLAIN: list[Event] = [Delta("Hi"), Delta(" there"), Finished("length", USAGE, "Hi there")]


@pytest.fixture(autouse=True)
def fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter) << 96))
    monkeypatch.setattr(time, "time", lambda: 1_767_225_600.0)


async def scripted(events: list[Event], fail: bool = False) -> AsyncIterator[Event]:
    for event in events:
        if fail and isinstance(event, Finished):
            raise APIError(500, "the model's worker stopped")
        yield event


def read(response: StreamingResponse) -> str:
    async def body() -> bytes:
        chunks = [c async for c in response.body_iterator]
        return b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)

    return asyncio.run(body()).decode()


def collect(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [c async for c in chunks]

    return asyncio.run(run())


@pytest.mark.parametrize("fail", [False, True], ids=["whole", "failing"])
def test_ollama_chat_stream(fail: bool) -> None:
    stream = ndjson(ollama.chunks("m:latest", scripted(EVENTS, fail), ollama.message))
    check(f"encoded/ollama-chat-stream{'-failing' if fail else ''}.ndjson", read(stream))


def test_ollama_whole_answers() -> None:
    check_json("encoded/ollama-chat.json", ollama.whole("m:latest", FINISHED, ollama.message))
    check_json("encoded/ollama-generate.json", ollama.whole("m:latest", PLAIN[-1], ollama.response))  # type: ignore[arg-type]


@pytest.mark.parametrize("fail", [False, True], ids=["whole", "failing"])
def test_openai_chat_stream(fail: bool) -> None:
    head = openai.chat_head("m")
    chunks = openai.chat_chunks(head, scripted(EVENTS, fail), logprobs=False, include_usage=True)
    name = f"encoded/openai-chat-stream{'-failing' if fail else ''}.sse"
    check(name, read(sse(chunks, openai.stream_error)))


def test_openai_whole_answers() -> None:
    check_json(
        "encoded/openai-chat.json", openai.chat_whole(openai.chat_head("m"), FINISHED, False)
    )
    completion = openai.Completion("m", "Say", logprobs=False)
    check_json("encoded/openai-completion.json", completion.whole(PLAIN[-1]))  # type: ignore[arg-type]
    stream = openai.Completion("m", "Say", logprobs=False).chunks(scripted(PLAIN), True)
    check("encoded/openai-completion-stream.sse", read(sse(stream, openai.stream_error)))


BODY = ResponsesBody.model_validate({"model": "m", "input": "Weather?"})


@pytest.mark.parametrize("fail", [False, True], ids=["whole", "failing"])
def test_responses_stream(fail: bool) -> None:
    stream = responses.stream(responses.base(BODY), scripted(EVENTS, fail))
    name = f"encoded/responses-stream{'-failing' if fail else ''}.sse"
    check(name, read(sse(stream, openai.stream_error)))


def test_responses_whole() -> None:
    check_json("encoded/responses.json", responses.whole(responses.base(BODY), FINISHED))


@pytest.mark.parametrize("fail", [False, True], ids=["whole", "failing"])
def test_anthropic_stream(fail: bool) -> None:
    stream = anthropic.stream(anthropic.head("m"), scripted(EVENTS, fail), Usage(9, 4))
    name = f"encoded/anthropic-stream{'-failing' if fail else ''}.sse"
    check(name, read(sse(stream, anthropic.stream_error)))


def test_anthropic_blocks_open_and_close_in_order() -> None:
    """Beyond the bytes: the block indexes and the thinking block's signature."""
    text = read(
        sse(
            anthropic.stream(anthropic.head("m"), scripted(EVENTS), Usage(9, 4)),
            anthropic.stream_error,
        )
    )
    got = [
        (b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1][6:]))
        for b in text.strip().split("\n\n")
    ]
    starts = [d["content_block"]["type"] for k, d in got if k == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    assert [d["index"] for k, d in got if k == "content_block_start"] == [0, 1, 2]
    assert all(d["type"] == k for k, d in got)
    final = got[-2][1]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["cache_read_input_tokens"] == 4


def test_anthropic_whole() -> None:
    check_json("encoded/anthropic.json", anthropic.whole(anthropic.head("m"), FINISHED))


@pytest.mark.parametrize("status", [400, 404, 413, 503, 500])
def test_each_dialect_writes_errors_in_its_own_shape(status: int) -> None:
    shapes = {
        "ollama": ollama.error_body(status, "no"),
        "openai": openai.error_body(status, "no"),
        "anthropic": anthropic.error_body(status, "no"),
    }
    check_json(f"encoded/errors-{status}.json", shapes)


def test_a_prompt_longer_than_the_context_is_each_apis_own_overflow_error() -> None:
    """Apps act on their API's own overflow error (Claude Code compacts on "prompt is
    too long", Codex on `context_length_exceeded`)."""
    exc = ContextOverflow("the prompt is 19000 tokens but the context holds 8192", 19000, 8192)
    shapes = {"ollama": ollama.error_body(400, str(exc), exc),
              "openai": openai.error_body(400, str(exc), exc),
              "anthropic": anthropic.error_body(400, str(exc), exc)}  # fmt: skip
    check_json("encoded/errors-overflow.json", shapes)
    assert (
        shapes["anthropic"]["error"]["message"] == "prompt is too long: 19000 tokens > 8192 maximum"
    )
    assert shapes["openai"]["error"]["code"] == "context_length_exceeded"


def test_tool_call_arguments_are_the_text_the_model_wrote() -> None:
    """Keys in the model's order and characters as they are: the arguments text a
    client sends back renders as the model wrote it (the cached prefix holds)."""
    stream = read(sse(openai.chat_chunks(openai.chat_head("m"), scripted(EVENTS), False, False),
                      openai.stream_error))  # fmt: skip
    chunks = [json.loads(b[6:]) for b in stream.split("\n\n") if b.startswith("data: {")]
    calls = [c for chunk in chunks for c in chunk["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["arguments"] == '{"city": "Zürich", "days": 2}'
