"""OpenAI's Responses API through the official `openai` client, unchanged: create
(whole and streamed) with instructions, a function call round trip, usage, structured
output, and refusals in OpenAI's error shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.live_server import Running

pytestmark = pytest.mark.slow
LIGHT: dict[str, Any] = {
    "type": "function",
    "name": "set_light",
    "description": "Turn the light on or off",
    "parameters": {
        "type": "object",
        "properties": {"on": {"type": "boolean"}},
        "required": ["on"],
    },
}


def client(server: Running) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def test_a_response_whole_and_streamed(server: Running) -> None:
    common: dict[str, Any] = {"model": "tiny", "input": "Say hi", "instructions": "Be brief.",
                              "max_output_tokens": 10, "temperature": 0}  # fmt: skip
    whole = client(server).responses.create(**common)
    assert whole.object == "response" and whole.status in ("completed", "incomplete")
    assert [item.type for item in whole.output] == ["message"]
    assert whole.usage.output_tokens <= 10 and whole.usage.input_tokens > 0
    assert whole.usage.total_tokens == whole.usage.input_tokens + whole.usage.output_tokens
    if whole.status == "incomplete":
        assert whole.incomplete_details.reason == "max_output_tokens"
    events = list(client(server).responses.create(**common, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text == whole.output_text


def test_a_function_call_round_trip(server: Running) -> None:
    c = client(server)
    first = c.responses.create(model="tiny", input="lights", tools=[LIGHT], tool_choice="required",
                               temperature=0, max_output_tokens=200)  # fmt: skip
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "set_light" and isinstance(json.loads(call.arguments)["on"], bool)
    second = c.responses.create(
        model="tiny", tools=[LIGHT], max_output_tokens=8,
        input=[{"role": "user", "content": "lights"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "done"}],
    )  # fmt: skip
    assert second.status in ("completed", "incomplete")
    events = list(c.responses.create(model="tiny", input="lights", tools=[LIGHT], stream=True,
                                     tool_choice={"type": "function", "name": "set_light"},
                                     temperature=0, max_output_tokens=200))  # fmt: skip
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == json.loads(call.arguments)
    added = [e.item.type for e in events if e.type == "response.output_item.added"]
    assert added == ["function_call"]


def test_structured_output(server: Running) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    out = client(server).responses.create(
        model="tiny", input="a number", max_output_tokens=60, temperature=0,
        text={"format": {"type": "json_schema", "name": "n", "schema": schema}},
    )  # fmt: skip
    assert isinstance(json.loads(out.output_text)["n"], int)


def test_hosted_tools_are_left_out_and_namespaces_give_their_functions(server: Running) -> None:
    """Codex sends OpenAI's hosted tools (web search) and namespaces of functions; the
    request is answered with the functions this server can offer."""
    c = client(server)
    function = {"type": "function", "name": "spawn", "parameters": {"type": "object"}}
    out = c.responses.create(
        model="tiny", input="hi", max_output_tokens=4,
        tools=[{"type": "web_search"}, {"type": "namespace", "name": "agents",
                                       "description": "sub-agents", "tools": [function]}],
    )  # fmt: skip
    assert out.status in ("completed", "incomplete")


def test_refusals_name_the_field(server: Running) -> None:
    c = client(server)
    with pytest.raises(openai.NotFoundError, match="previous_response_id"):
        c.responses.create(model="tiny", input="hi", previous_response_id="resp_1")
    with pytest.raises(openai.BadRequestError, match=r"input\.0"):
        c.responses.create(model="tiny", input=[{"type": "nope"}])
    no_images = r"input\.0\.content\.0\.image_url: model 'tiny:latest' does not take images"
    with pytest.raises(openai.BadRequestError, match=no_images):
        c.responses.create(model="tiny", input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}])  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="nope", input="hi")
    raw = httpx.post(server.url + "/v1/responses", json={"model": "tiny"}, timeout=30)
    assert raw.status_code == 400 and "input" in raw.json()["error"]["message"]


def test_reasoning_comes_back_as_a_reasoning_item(server: Running) -> None:
    from tests.inference.test_live_thinking import QWEN3_LIKE, SPELLS

    body = {"model": "thinker", "from": "tiny", "template": QWEN3_LIKE, "stream": False}
    assert httpx.post(server.url + "/api/create", json=body, timeout=60).status_code == 200
    common: dict[str, Any] = {
        "model": "thinker", "input": "hi", "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_schema", "name": "s", "schema": SPELLS}},
    }  # fmt: skip
    whole = client(server).responses.create(**common)
    assert [item.type for item in whole.output] == ["reasoning", "message"]
    assert whole.output[0].content[0].text == "ab" and whole.output_text.strip() == '"cd"'
    events = list(client(server).responses.create(**common, stream=True))
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert thought == "ab" and events[-1].response.output_text.strip() == '"cd"'


def test_a_kept_response_is_continued_read_and_deleted(server: Running) -> None:
    """`store` (on by default, as OpenAI's): a later request continues the conversation
    with `previous_response_id`, exactly as if it had sent the whole conversation."""
    c = client(server)
    greedy = {"model": "tiny", "max_output_tokens": 6, "temperature": 0}
    first = c.responses.create(input="Once upon a time", **greedy)
    assert first.store is True
    follow = c.responses.create(input="Then", previous_response_id=first.id, **greedy)
    assert follow.previous_response_id == first.id
    whole = c.responses.create(input=[
        {"role": "user", "content": "Once upon a time"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "Then"}], store=False, **greedy)  # fmt: skip
    assert follow.output_text == whole.output_text
    assert c.responses.retrieve(follow.id).output_text == follow.output_text
    c.responses.delete(follow.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(follow.id)
    with pytest.raises(openai.NotFoundError):  # store: false keeps nothing
        c.responses.retrieve(whole.id)


def test_codexs_empty_probe_is_answered(server: Running) -> None:
    """Codex checks a provider with a one-token request before it starts."""
    out = client(server).responses.create(model="tiny", input="", max_output_tokens=1)
    assert out.status in ("completed", "incomplete") and out.usage is not None
    assert out.usage.output_tokens <= 1
