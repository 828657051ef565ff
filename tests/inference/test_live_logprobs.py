"""Log probabilities of the generated tokens, through the official clients: one entry
per generated token, from the model's own logits, with the most likely alternatives."""

from __future__ import annotations

import math
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.live_server import Running

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]
GREEDY = {"temperature": 0, "num_predict": 8, "ignore_eos": True, "repeat_penalty": 1.0}
"""Greedy and no penalty: the chosen token is then the most likely one of the logits."""


def check(entries: list[Any], top: int) -> None:
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == top
        alternatives = [a.logprob for a in entry.top_logprobs]
        assert alternatives == sorted(alternatives, reverse=True)
        assert sum(math.exp(lp) for lp in alternatives) <= 1 + 1e-6
        # Greedy: the chosen token is the most likely one.
        assert entry.token == entry.top_logprobs[0].token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)


def test_ollama_chat_and_generate_return_a_logprob_per_token(server: Running) -> None:
    client = ollama.Client(host=server.url)
    whole = client.chat("tiny", messages=HI, logprobs=True, top_logprobs=3, options=GREEDY)
    assert whole.logprobs is not None and len(whole.logprobs) == whole.eval_count == 8
    check(list(whole.logprobs), 3)
    streamed = list(
        client.chat("tiny", messages=HI, logprobs=True, top_logprobs=3, options=GREEDY, stream=True)
    )
    tokens = [e.token for c in streamed for e in (c.logprobs or [])]
    assert tokens == [e.token for e in whole.logprobs]
    generated = client.generate("tiny", "hi", logprobs=True, options=GREEDY)
    assert generated.logprobs is not None and len(generated.logprobs) == 8
    assert all(not e.top_logprobs for e in generated.logprobs)
    plain = client.chat("tiny", messages=HI, options=GREEDY)
    assert not plain.logprobs


def test_openai_chat_returns_logprobs_content(server: Running) -> None:
    client: Any = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    whole = client.chat.completions.create(
        model="tiny", messages=HI, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )
    content = whole.choices[0].logprobs.content
    assert len(content) == whole.usage.completion_tokens
    check(content, 2)
    stream = client.chat.completions.create(
        model="tiny", messages=HI, max_tokens=8, temperature=0, logprobs=True, stream=True
    )
    streamed = [e.token for c in stream if c.choices and c.choices[0].logprobs
                for e in c.choices[0].logprobs.content]  # fmt: skip
    assert streamed == [e.token for e in content]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"top_logprobs": 3}, "top_logprobs needs logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": "yes"}, "logprobs"),
    ],
)
def test_bad_logprobs_requests_are_400s(server: Running, body: dict[str, Any], words: str) -> None:
    request = {"model": "tiny", "messages": HI, "stream": False, **body}
    answer = httpx.post(server.url + "/api/chat", json=request, timeout=60)
    assert answer.status_code == 400 and words in answer.json()["error"]
