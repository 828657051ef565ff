"""`<think>...</think>` blocks: DeepSeek-R1 and its distills, Qwen3, QwQ and their kin
write their thinking between these tags in the same stream as the answer.

A tag may arrive cut across pieces, so an end of text that could start one is
held back until the next piece says what it is.
"""

from __future__ import annotations

import re
from typing import Literal

from localllm.formats.base import Parsed, ToolParser, partial_suffix

OPEN, CLOSE = "<think>", "</think>"

_GENERATION_PROMPT = re.compile(
    r"\{%-?\s*(?:el)?if[^%]*add_generation_prompt[^%]*%\}(.*?)\{%-?\s*(?:endif|else|elif)",
    re.DOTALL,
)
"""Jinja: what `{% if ... add_generation_prompt ... %}` writes."""


def opens_thinking(template: str) -> bool:
    """Whether a chat template's generation prompt opens the `<think>` block itself
    (DeepSeek-R1's distills do), so the model's output starts inside it. A Go template
    has no generation-prompt flag: its prompt is what follows its last action."""
    from localllm.templates.ollama import is_go_template

    if is_go_template(template):
        tail = template[template.rfind("}}") + 2 :]
        return OPEN in tail and CLOSE not in tail
    return any(OPEN in part and CLOSE not in part for part in _GENERATION_PROMPT.findall(template))


Part = tuple[Literal["thinking", "content"], str]


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
            keep = partial_suffix(text, (tag,))
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


class TaggedReply:
    """A reply of optional `<think>` blocks, then an answer that may hold tool calls
    (in whatever syntax `tools` reads). Either part may be absent."""

    def __init__(self, thinking: ThinkingSplitter | None, tools: ToolParser | None) -> None:
        self._thinking = thinking
        self._tools = tools

    def feed(self, text: str) -> Parsed:
        parts: list[Part] = self._thinking.feed(text) if self._thinking else [("content", text)]
        return self._parse(parts, final=False)

    def finish(self) -> Parsed:
        parts = self._thinking.finish() if self._thinking else []
        return self._parse(parts, final=True)

    def _parse(self, parts: list[Part], final: bool) -> Parsed:
        out = Parsed()
        for kind, text in parts:
            if kind == "thinking":
                out += Parsed(thinking=text)
            elif self._tools is None:
                out += Parsed(content=text)
            else:
                content, calls = self._tools.feed(text)
                out += Parsed(content=content, calls=calls)
        if final and self._tools is not None:
            content, calls = self._tools.finish()
            out += Parsed(content=content, calls=calls)
        return out
