"""The OpenAI-compatible API through the official `openai` client, with real inference."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.live_server import Running

pytestmark = pytest.mark.slow


def client(server: Running) -> Any:
    """Typed Any: the tests send plain dicts, which the typed overloads do not accept."""
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_models(server: Running) -> None:
    ids = {m.id for m in client(server).models.list()}
    assert ids == {"tiny:latest", "other:latest"}
    one = client(server).models.retrieve("tiny:latest")
    assert one.id == "tiny:latest" and one.object == "model" and one.owned_by == "library"
    assert client(server).models.retrieve("tiny").id == "tiny:latest"
    # beyond OpenAI's shape: the context window apps size their prompts by
    extra = one.model_extra or {}
    assert extra["context_length"] == 1024  # the Modelfile's num_ctx
    assert extra["max_context_length"] >= 1024 and "completion" in extra["capabilities"]
    with pytest.raises(openai.NotFoundError, match="not found"):
        client(server).models.retrieve("nope")


def test_chat_stream_matches_non_stream_and_ends_with_usage(server: Running) -> None:
    c = client(server)
    messages = [{"role": "user", "content": "Hi"}]
    whole = c.chat.completions.create(
        model="tiny", messages=messages, max_tokens=10, seed=2, temperature=0
    )
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage.completion_tokens >= 1
    stream = c.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=10,
        seed=2,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    )


def test_json_schema_response_format_parses(server: Running) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"enum": ["red", "green"]}, "count": {"type": "integer"}},
        "required": ["colour", "count"],
    }
    out = client(server).chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "json please"}],
        seed=5,
        max_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    value = json.loads(out.choices[0].message.content or "")
    assert value["colour"] in ("red", "green") and isinstance(value["count"], int)


def test_required_tool_call_is_parsed(server: Running) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "set_light",
                "parameters": {
                    "type": "object",
                    "properties": {"on": {"type": "boolean"}, "level": {"enum": [1, 2, 3]}},
                    "required": ["on", "level"],
                },
            },
        }
    ]
    out = client(server).chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "lights"}],
        tools=tools,
        tool_choice="required",
        seed=1,
        max_tokens=100,
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = (choice.message.tool_calls or [])[0]
    assert call.function.name == "set_light"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["on"], bool) and arguments["level"] in (1, 2, 3)


def test_completions_and_embeddings(server: Running) -> None:
    c = client(server)
    out = c.completions.create(model="tiny", prompt="Once", max_tokens=5, seed=1)
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.completion_tokens <= 5
    emb = c.embeddings.create(model="tiny", input=["a", "b", "c"])
    assert [d.index for d in emb.data] == [0, 1, 2] and len(emb.data[0].embedding) == 64


def test_errors_come_back_as_api_errors(server: Running) -> None:
    c = client(server)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], temperature=7
        )
    assert "temperature" in str(info.value)
