"""Thinking apart from the answer, on the server: Ollama's `think`, OpenAI's
`reasoning_effort`, and the `thinking` / `reasoning_content` fields of replies.

A model thinks when its template says so (`<think>` blocks, Qwen3's
`enable_thinking`, DeepSeek's `reasoning_content`, Ollama's `.Think`); only then
is its output split at `<think>...</think>` (`localllm.reasoning`), and a
template whose generation prompt opens the block (R1 distills) starts inside
it. `think: true` (or a level) for a model that does not think is a 400;
`think: false` reaches the template (which may switch thinking off) and any
thinking the model writes anyway is dropped from the reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from localllm.reasoning import ThinkingSplitter, opens_thinking
from localllm.server.errors import APIError

Think = bool | Literal["low", "medium", "high"] | None
_MARKS = ("<think>", ".Think", "enable_thinking", "reasoning_content")


def thinks(template: str | None) -> bool:
    """Whether a model with this chat template thinks (the `thinking` capability)."""
    return any(mark in (template or "") for mark in _MARKS)


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

    def splitter(self) -> Splitter:
        return Splitter(self)


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


class Splitter:
    """One reply's text as (thinking, content), fed piece by piece."""

    def __init__(self, mode: Thinking) -> None:
        self.mode = mode
        self._splitter = ThinkingSplitter(mode.inside) if mode.split else None

    def feed(self, text: str) -> tuple[str, str]:
        if self._splitter is None:
            return "", text
        return self._join(self._splitter.feed(text))

    def finish(self) -> tuple[str, str]:
        if self._splitter is None:
            return "", ""
        return self._join(self._splitter.finish())

    def whole(self, text: str) -> tuple[str, str]:
        """(thinking, content) of a whole answer, with a fresh splitter."""
        other = Splitter(self.mode)
        thinking, content = other.feed(text)
        rest_thinking, rest_content = other.finish()
        return thinking + rest_thinking, content + rest_content

    def _join(self, parts: Sequence[tuple[str, str]]) -> tuple[str, str]:
        thinking = "".join(t for kind, t in parts if kind == "thinking")
        content = "".join(t for kind, t in parts if kind == "content")
        return (thinking if self.mode.keep else ""), content
