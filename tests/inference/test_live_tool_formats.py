"""Each family's reply format through the server: the format is chosen from the
template, a required call is written in it (its grammar), and the reply comes back
parsed (thinking apart, each call as soon as it is complete), through the official
clients. Golden tests of each parser are in tests/formats/."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import openai
import pytest

from localllm.formats.deepseek import CALL_BEGIN, CALL_END, CALLS_BEGIN, CALLS_END, SEP
from tests.live_server import Running

pytestmark = pytest.mark.slow

HARMONY = (
    "{% for m in messages %}<|start|>{{ m['role'] }}"
    "{% if m['role'] == 'assistant' %}<|channel|>final{% endif %}"
    "<|message|>{{ m['content'] }}<|end|>{% endfor %}<|start|>assistant"
)
DEEPSEEK_V3 = (
    "{% for m in messages %}<\uff5cUser\uff5c>{{ m['content'] }}{% endfor %}"
    "{% if tools %}{{ '" + CALLS_BEGIN + CALL_BEGIN + "function" + SEP + "' }}"
    "name\\n```json\\n{}\\n```{{ '" + CALL_END + CALLS_END + "' }}{% endif %}"
    "<\uff5cAssistant\uff5c>"
)
HERMES = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if tools %}<tool_call>{% endif %}<|im_start|>assistant\n"
)
LIGHT = {
    "type": "function",
    "function": {
        "name": "set_light",
        "parameters": {
            "type": "object",
            "properties": {"on": {"type": "boolean"}},
            "required": ["on"],
        },
    },
}
OTHER = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASK = [{"role": "user", "content": "lights"}]


def create(server: Running, name: str, template: str) -> None:
    body = {"model": name, "from": "tiny", "template": template, "stream": False}
    assert httpx.post(server.url + "/api/create", json=body, timeout=60).status_code == 200


def client(server: Running) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize(
    ("name", "template"), [("oss", HARMONY), ("deepseek", DEEPSEEK_V3), ("qwen", HERMES)]
)
def test_a_required_call_is_written_and_read_in_the_templates_format(
    server: Running, name: str, template: str
) -> None:
    create(server, name, template)
    common: dict[str, Any] = {"model": name, "messages": ASK, "tools": [LIGHT, OTHER],
                              "tool_choice": "required", "seed": 3, "max_tokens": 600}  # fmt: skip
    whole = client(server).chat.completions.create(**common)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.function.name in ("set_light", "get_time")
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments, dict)
    # Streamed: the call arrives whole in one chunk, before the chunk that ends the reply.
    chunks = list(client(server).chat.completions.create(**common, stream=True))
    with_calls = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.tool_calls]
    assert len(with_calls) == 1 and with_calls[0] < len(chunks) - 1
    streamed = chunks[with_calls[0]].choices[0].delta.tool_calls[0]
    assert (streamed.index, streamed.function.name) == (0, call.function.name)
    assert json.loads(streamed.function.arguments) == arguments
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


SPELLS_HARMONY = {
    "type": "string",
    "pattern": r"^<\|channel\|>analysis<\|message\|>ab<\|end\|><\|start\|>assistant"
    r"<\|channel\|>final<\|message\|>cd$",
}
"""The JSON string holding a harmony reply: thinking `ab`, then the answer `cd"` (the
string's closing quote ends the answer; its opening one lands in the first header)."""


def test_harmony_channels_split_thinking_from_the_answer(server: Running) -> None:
    create(server, "oss", HARMONY)
    schema = {"type": "json_schema", "json_schema": {"name": "t", "schema": SPELLS_HARMONY}}
    whole = client(server).chat.completions.create(
        model="oss", messages=ASK, response_format=schema, reasoning_effort="low"
    )
    message = whole.choices[0].message
    assert message.model_extra["reasoning_content"] == "ab"
    assert message.content.strip() == 'cd"'
    reply = ollama.Client(host=server.url).chat(
        "oss", messages=ASK, format=SPELLS_HARMONY, think="low", stream=False
    )
    assert reply.message.thinking == "ab" and (reply.message.content or "").strip() == 'cd"'
    shown = ollama.Client(host=server.url).show("oss")
    assert "thinking" in (shown.capabilities or [])
