"""A prompt far over the model's context is refused or cut by its size in bytes before
the worker tokenizes it (localllm/server/prompt_size.py)."""

from __future__ import annotations

import pytest

from localllm.engine.protocol import Generate
from localllm.errors import APIError
from localllm.inference.prompt_size import BYTES_PER_TOKEN, bound_inputs, bound_prompt, prompt_bytes

CTX = 64
LIMIT = BYTES_PER_TOKEN * CTX


def test_a_prompt_that_may_fit_goes_as_it_is() -> None:
    request = Generate(1, prompt="x" * LIMIT)
    assert bound_prompt(request, CTX) is request


def test_a_far_longer_prompt_is_refused_with_both_sizes() -> None:
    with pytest.raises(APIError, match=r"1,025 bytes, far more than the model's context of 64"):
        bound_prompt(Generate(1, prompt="x" * (LIMIT + 1)), CTX)
    chat = Generate(
        1, messages=({"role": "user", "content": [{"type": "text", "text": "é" * LIMIT}]},)
    )
    with pytest.raises(APIError) as refused:
        bound_prompt(chat, CTX)
    assert refused.value.status == 400


def test_truncation_keeps_the_end_and_the_system_prompt() -> None:
    raw = bound_prompt(Generate(1, prompt="a" * LIMIT + "the end", truncate=True), CTX)
    assert raw.prompt is not None and raw.prompt.endswith("the end") and len(raw.prompt) == LIMIT
    messages = (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "old " * LIMIT},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "new question"},
    )
    cut = bound_prompt(Generate(1, messages=messages, truncate=True), CTX)
    assert cut.messages is not None
    assert [m["content"] for m in cut.messages] == ["Be brief.", "ok", "new question"]
    huge = ({"role": "user", "content": "ü" * LIMIT + "?"},)
    last = bound_prompt(Generate(1, messages=huge, truncate=True), CTX)
    assert last.messages is not None and prompt_bytes(last) <= LIMIT
    assert str(last.messages[-1]["content"]).endswith("?")


def test_texts_to_embed_are_bounded_one_by_one() -> None:
    assert bound_inputs(("a", "b" * (LIMIT + 5)), CTX, True) == ("a", "b" * LIMIT)
    with pytest.raises(APIError, match=r"input\.1: 1,029 bytes"):
        bound_inputs(("a", "b" * (LIMIT + 5)), CTX, False)
