"""Anthropic's Messages API through the official `anthropic` client, unchanged, against
the real server and a real tiny model: messages (whole and streamed), a tool round trip
with a forced tool, count_tokens, errors in Anthropic's shape, and its API key header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import Running

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "Say hi"}]
GREEDY = {"temperature": 0}
"""Today's client has no sampling fields; older clients (and this server) still take them."""
LIGHT: dict[str, Any] = {
    "name": "set_light",
    "description": "Turn the light on or off",
    "input_schema": {
        "type": "object",
        "properties": {"on": {"type": "boolean"}},
        "required": ["on"],
    },
}


def client(server: Running, key: str = "unused") -> Any:
    """Untyped: the tests send what the typed signature does not name (`extra_body`)."""
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


def test_a_message_whole_and_streamed(server: Running) -> None:
    common: dict[str, Any] = {"model": "tiny", "max_tokens": 12, "messages": ASK,
                              "system": "Be brief.", "extra_body": GREEDY}  # fmt: skip
    whole = client(server).messages.create(**common)
    assert whole.type == "message" and whole.role == "assistant" and whole.model == "tiny"
    assert whole.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in whole.content] == ["text"]
    assert 0 < whole.usage.output_tokens <= 12
    with client(server).messages.stream(**common) as stream:
        events = list(stream)
        final = stream.get_final_message()
    streamed = "".join(e.delta.text for e in events if e.type == "content_block_delta"
                       and e.delta.type == "text_delta")  # fmt: skip
    assert streamed == whole.content[0].text == final.content[0].text
    start = next(e for e in events if e.type == "message_start").message.usage
    # the prompt's tokens are known before the answer, and said at its start
    assert start.input_tokens + (start.cache_read_input_tokens or 0) == (
        whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0))  # fmt: skip
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    counted = client(server).messages.count_tokens(model="tiny", messages=ASK, system="Be brief.")
    usage = final.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)


def test_a_stop_sequence_is_named(server: Running) -> None:
    whole = client(server).messages.create(
        model="tiny", max_tokens=40, messages=ASK, stop_sequences=["e"], extra_body=GREEDY
    )
    if whole.stop_reason == "stop_sequence":
        assert whole.stop_sequence == "e"
    else:  # the model never wrote an "e"
        assert whole.stop_sequence is None


def test_a_tool_round_trip_with_a_forced_tool(server: Running) -> None:
    c = client(server)
    first = c.messages.create(
        model="tiny", max_tokens=200, messages=ASK, tools=[LIGHT],
        tool_choice={"type": "tool", "name": "set_light"}, extra_body=GREEDY,
    )  # fmt: skip
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "set_light" and isinstance(use.input, dict)
    assert isinstance(use.input["on"], bool)
    assert use.id.startswith("toolu_")
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "the light is on"},
            {"type": "text", "text": "Thanks"},
        ]},
    ]  # fmt: skip
    second = c.messages.create(model="tiny", max_tokens=8, messages=history, tools=[LIGHT])
    assert second.stop_reason in ("end_turn", "max_tokens", "tool_use")
    # Streamed, the forced call arrives as one tool_use block with its JSON.
    with c.messages.stream(
        model="tiny", max_tokens=200, messages=ASK, tools=[LIGHT],
        tool_choice={"type": "any"}, extra_body=GREEDY,
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].input == use.input


def test_errors_have_anthropics_shape_and_name_the_field(server: Running) -> None:
    c = client(server)
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.0") as bad:
        c.messages.create(
            model="tiny", max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "nope", "x": 1}]}],
        )  # fmt: skip
    body: Any = bad.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError):
        c.messages.create(model="nope", max_tokens=5, messages=ASK)
    with pytest.raises(anthropic.BadRequestError, match="does not take images"):
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "AAAA"}}  # fmt: skip
        c.messages.create(model="tiny", max_tokens=5,
                          messages=[{"role": "user", "content": [image]}])  # fmt: skip
    raw = httpx.post(server.url + "/v1/messages", json={"model": "tiny", "messages": ASK})
    assert raw.status_code == 400 and raw.json()["type"] == "error"
    assert "max_tokens" in raw.json()["error"]["message"]


def test_the_api_key_comes_as_x_api_key(make_server: Callable[..., Running], store: Store) -> None:
    server = make_server(store, ServerSettings(port=0, api_key="s3cret"))
    out = client(server, "s3cret").messages.create(model="tiny", max_tokens=3, messages=ASK)
    assert out.content
    with pytest.raises(anthropic.AuthenticationError):
        client(server, "wrong").messages.create(model="tiny", max_tokens=3, messages=ASK)


def test_thinking_comes_back_as_a_thinking_block(server: Running) -> None:
    from tests.inference.test_live_thinking import QWEN3_LIKE, SPELLS

    body = {"model": "thinker", "from": "tiny", "template": QWEN3_LIKE, "stream": False}
    assert httpx.post(server.url + "/api/create", json=body, timeout=60).status_code == 200
    spelled = {"format": {"type": "json_schema", "schema": SPELLS}}
    whole = client(server).messages.create(
        model="thinker", max_tokens=30, messages=ASK, output_config=spelled,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )  # fmt: skip
    assert [b.type for b in whole.content] == ["thinking", "text"]
    assert whole.content[0].thinking == "ab"
    assert whole.content[1].text.strip() == '"cd"'
    with pytest.raises(anthropic.BadRequestError, match="does not support thinking"):
        client(server).messages.create(
            model="tiny", max_tokens=5, messages=ASK,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )  # fmt: skip
