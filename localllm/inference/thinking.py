"""Thinking apart from the answer, on the server: Ollama's `think`, OpenAI's
`reasoning_effort`, and the `thinking` / `reasoning_content` fields of replies.

A model thinks when its template says so (`<think>` blocks, Qwen3's
`enable_thinking`, DeepSeek's `reasoning_content`, Ollama's `.Think`, harmony's
channels: `localllm.formats.thinks`); only then is its output split (by its
format's parser, `localllm.inference.replies`), and a template whose generation
prompt opens the block (R1 distills) starts inside it. `think: true` (or a level)
for a model that does not think is a 400; `think: false` reaches the template
(which may switch thinking off) and any thinking the model writes anyway is dropped
from the reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.errors import APIError
from localllm.formats import thinks
from localllm.formats.think import opens_thinking
from localllm.inference.request import Think


@dataclass(frozen=True)
class Thinking:
    """How one request's thinking goes: to the template, and out of the reply."""

    split: bool
    """Split the output at the tags (the model thinks)."""
    keep: bool
    """Return the thinking (False for `think: false`: it is dropped)."""
    inside: bool
    """The output starts inside a thinking block."""
    flag: bool | None
    """What the template gets as `think` (None: the request did not say)."""
    level: str = ""


def thinking_for(think: Think, template: str | None, model: str) -> Thinking:
    """The request's thinking on this model; APIError 400 if it asks a model that does
    not think to think."""
    capable = thinks(template)
    if think not in (None, False) and not capable:
        raise APIError(400, f"model {model!r} does not support thinking (think)")
    return Thinking(
        split=capable,
        keep=think is not False,
        inside=capable and opens_thinking(template or ""),
        flag=None if think is None else think is not False,
        level=think if isinstance(think, str) else "",
    )
