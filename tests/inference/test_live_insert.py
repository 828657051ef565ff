"""Fill in the middle (`suffix` on /api/generate and /v1/completions) and the legacy
completions' logprobs, through the official clients."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest

from localllm.store.store import Store
from tests.factory import ModelSpec, write_model
from tests.live_server import Running, add_model

pytestmark = pytest.mark.slow
OPTIONS = {"seed": 1, "num_predict": 8, "temperature": 0}


@pytest.fixture
def coder(server: Running, store: Store, tmp_path: Path) -> Running:
    add_model(store, "coder", write_model(ModelSpec(name="coder", fim=True), tmp_path / "c.gguf"))
    return server


def test_insert_shows_and_fills_the_middle(coder: Running) -> None:
    client = ollama.Client(host=coder.url)
    assert "insert" in (client.show("coder").capabilities or [])
    assert "insert" not in (client.show("tiny").capabilities or [])
    whole = client.generate("coder", "def f(", suffix="return x", options=OPTIONS)
    # BOS, the three FIM tokens, the prefix and the suffix: the prompt the model saw.
    assert whole.done and (whole.prompt_eval_count or 0) > 4 + len("return x")
    streamed = "".join(
        c.response or "" for c in client.generate("coder", "def f(", suffix="return x",
                                            options=OPTIONS, stream=True)
    )  # fmt: skip
    assert streamed == whole.response


def test_a_model_without_fim_tokens_refuses_a_suffix(server: Running) -> None:
    with pytest.raises(ollama.ResponseError, match="does not support insert") as caught:
        ollama.Client(host=server.url).generate("tiny", "a", suffix="b")
    assert caught.value.status_code == 400


def test_completions_take_a_suffix_and_give_legacy_logprobs(coder: Running) -> None:
    client: Any = openai.OpenAI(base_url=f"{coder.url}/v1", api_key="x", max_retries=0)
    common: dict[str, Any] = {"model": "coder", "prompt": "Once", "max_tokens": 6, "seed": 1,
                              "temperature": 0, "logprobs": 2}  # fmt: skip
    out = client.completions.create(**common)
    logprobs = out.choices[0].logprobs
    assert len(logprobs.tokens) == out.usage.completion_tokens
    assert "".join(logprobs.tokens) == out.choices[0].text
    assert logprobs.text_offset[0] == len("Once")  # offsets count from the prompt's start
    assert all(len(top) == 2 and max(top.values()) <= 0 for top in logprobs.top_logprobs)
    assert all(lp <= 0 and math.isfinite(lp) for lp in logprobs.token_logprobs)
    streamed = [c.choices[0].logprobs for c in client.completions.create(**common, stream=True)]
    assert [t for p in streamed if p for t in p.tokens] == logprobs.tokens
    filled = client.completions.create(**{**common, "suffix": " end"})
    assert filled.usage.prompt_tokens > out.usage.prompt_tokens
