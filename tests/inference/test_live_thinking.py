"""Thinking on the server: `think` reaches the template, and the reply carries the
thinking apart from the content (Ollama's `thinking`, OpenAI's `reasoning_content`),
through the official clients. The model is made to write a known thinking block by a
format whose grammar spells it."""

from __future__ import annotations

from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.live_server import Running

pytestmark = pytest.mark.slow
QWEN3_LIKE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}"
)
SPELLS = {"type": "string", "pattern": "^<think>ab</think>cd$"}
"""The answer is the JSON string "<think>ab</think>cd": thinking `ab`, content `"cd"`
(then maybe a space: the grammar allows white space after a JSON value)."""
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def thinker(server: Running) -> Running:
    body = {"model": "thinker", "from": "tiny", "template": QWEN3_LIKE, "stream": False}
    assert httpx.post(server.url + "/api/create", json=body, timeout=60).status_code == 200
    return server


def prompt(server: Running, **fields: Any) -> str:
    body = {"model": "thinker", "messages": HI, **fields}
    answer = httpx.post(server.url + "/apply-template", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["prompt"])


def test_think_reaches_the_template_and_the_capability_shows(thinker: Running) -> None:
    assert prompt(thinker, think=False).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompt(thinker, think=True).endswith("<|im_start|>assistant\n")
    assert prompt(thinker).endswith("<|im_start|>assistant\n")
    client = ollama.Client(host=thinker.url)
    assert "thinking" in (client.show("thinker").capabilities or [])
    assert "thinking" not in (client.show("tiny").capabilities or [])


def test_ollama_replies_carry_thinking_apart(thinker: Running) -> None:
    client = ollama.Client(host=thinker.url)
    whole = client.chat("thinker", messages=HI, think=True, format=SPELLS, stream=False)
    assert whole.message.thinking == "ab" and (whole.message.content or "").strip() == '"cd"'
    thinking, content = "", ""
    for chunk in client.chat("thinker", messages=HI, think=True, format=SPELLS, stream=True):
        thinking += chunk.message.thinking or ""
        content += chunk.message.content or ""
    assert (thinking, content.strip()) == ("ab", '"cd"')
    off = client.chat("thinker", messages=HI, think=False, format=SPELLS, stream=False)
    assert not off.message.thinking and (off.message.content or "").strip() == '"cd"'
    generated = client.generate("thinker", "hi", think=True, format=SPELLS, stream=False)
    assert generated.thinking == "ab" and (generated.response or "").strip() == '"cd"'


def test_openai_replies_carry_reasoning_content(thinker: Running) -> None:
    client: Any = openai.OpenAI(base_url=f"{thinker.url}/v1", api_key="x", max_retries=0)
    schema = {"type": "json_schema", "json_schema": {"name": "t", "schema": SPELLS}}
    whole = client.chat.completions.create(
        model="thinker", messages=HI, reasoning_effort="low", response_format=schema
    )
    message = whole.choices[0].message
    assert message.content.strip() == '"cd"' and message.model_extra["reasoning_content"] == "ab"
    stream = client.chat.completions.create(
        model="thinker", messages=HI, response_format=schema, stream=True
    )
    parts = [c.choices[0].delta for c in stream if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in parts) == "ab"
    assert "".join(d.content or "" for d in parts).strip() == '"cd"'


def test_think_on_a_model_that_does_not_think_is_a_400(server: Running) -> None:
    with pytest.raises(ollama.ResponseError, match="does not support thinking") as caught:
        ollama.Client(host=server.url).chat("tiny", messages=HI, think=True)
    assert caught.value.status_code == 400


def test_a_go_template_sees_think(server: Running) -> None:
    template = "{{ range .Messages }}{{ .Content }}{{ end }}|{{ .Think }} {{ .IsThinkSet }} "
    template += "{{ .ThinkLevel }}"
    body = {"model": "go-think", "from": "tiny", "template": template, "stream": False}
    assert httpx.post(server.url + "/api/create", json=body, timeout=60).status_code == 200
    for think, expected in ((None, "hi|false false "), ("high", "hi|true true high")):
        fields = {"think": think} if think is not None else {}
        answer = httpx.post(
            server.url + "/apply-template", json={"model": "go-think", "messages": HI, **fields}
        )
        assert answer.json()["prompt"] == expected
