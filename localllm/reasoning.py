"""Reasoning ("thinking") text apart from the answer, in a stream.

Reasoning models (DeepSeek-R1, Qwen3, QwQ and their kin) write their thinking
between `<think>` and `</think>` in the same token stream as the answer. The
server splits it out (`server.thinking`, with `ThinkingSplitter`: a tag may
arrive cut across pieces, so an end that could start a tag is held back until
the next piece says what it is) and sends it as Ollama's `message.thinking`;
the CLI and the TUI read those fields (`chunk_parts`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

Part = tuple[Literal["thinking", "content"], str]

OPEN, CLOSE = "<think>", "</think>"


_GENERATION_PROMPT = re.compile(
    r"add_generation_prompt\s*-?%\}(.*?)\{%-?\s*(?:endif|else|elif)", re.DOTALL
)


def opens_thinking(template: str) -> bool:
    """Whether a chat template's generation prompt opens the `<think>` block itself
    (DeepSeek-R1's distills do), so the model's output starts inside it."""
    return any(OPEN in part and CLOSE not in part for part in _GENERATION_PROMPT.findall(template))


class ThinkingSplitter:
    """Feed it streamed text; it returns `("thinking" | "content", text)` parts.

    `thinking`: the output starts inside a thinking block (see `opens_thinking`).
    """

    def __init__(self, thinking: bool = False) -> None:
        self._thinking = thinking
        self._held = ""
        self._started = False

    def feed(self, text: str) -> list[Part]:
        parts: list[Part] = []
        text = self._held + text
        self._held = ""
        while text:
            tag = CLOSE if self._thinking else OPEN
            at = text.find(tag)
            if at >= 0:
                self._emit(parts, text[:at])
                self._thinking = not self._thinking
                text = text[at + len(tag) :]
                continue
            keep = _partial_suffix(text, tag)
            self._emit(parts, text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            break
        return parts

    def finish(self) -> list[Part]:
        """Whatever was held back, once the stream has ended."""
        parts: list[Part] = []
        self._emit(parts, self._held)
        self._held = ""
        return parts

    def _emit(self, parts: list[Part], text: str) -> None:
        if not text:
            return
        kind: Literal["thinking", "content"] = "thinking" if self._thinking else "content"
        if kind == "content" and not self._started:
            # The answer after a thinking block starts with the newlines that closed it.
            text = text.lstrip("\n")
            if not text:
                return
            self._started = True
        if parts and parts[-1][0] == kind:
            parts[-1] = (kind, parts[-1][1] + text)
        else:
            parts.append((kind, text))


def chunk_parts(chunk: Mapping[str, Any]) -> list[Part]:
    """The parts of one streamed `/api/chat` chunk, as the server split them: its
    `message.thinking`, then its `message.content`."""
    message = chunk.get("message") or {}
    parts: list[Part] = []
    if message.get("thinking"):
        parts.append(("thinking", str(message["thinking"])))
    if message.get("content"):
        parts.append(("content", str(message["content"])))
    return parts


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
