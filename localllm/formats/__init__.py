"""What a model's output means, per family: thinking apart from the answer, and tool
calls, read from the text as it streams.

A reply's format is chosen from the chat template the model runs with (never from
its name): harmony for gpt-oss, DeepSeek's markers, else `<think>` tags and the
JSON call forms (Hermes/Qwen, Mistral, Llama). Each format is one module with its
own golden tests; `format_for` is the one place that chooses. Qwen3-Coder's XML
calls are told by their `<function=` tags. The server parses
(`localllm.inference.replies`); the worker only has to render the format's
`preserved` tokens as text, which llama.cpp otherwise drops as control tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localllm.formats.base import Parsed, Parser

__all__ = ["Format", "Parsed", "Parser", "format_for", "thinks"]

HARMONY, DEEPSEEK, QWEN3_CODER, TAGGED = "harmony", "deepseek", "qwen3-coder", "tagged"
_THINKING_MARKS = ("<think>", ".Think", "enable_thinking", "reasoning_content", "<|channel|>")


@dataclass(frozen=True)
class Format:
    name: str
    """harmony | deepseek | qwen3-coder | tagged (`<think>` and JSON calls)."""
    preserved: tuple[str, ...]
    """Control tokens the parser needs to see as text."""
    call_syntax: str
    """The forced-call grammar's syntax (`localllm.constraints.grammar`)."""

    def parser(self, *, thinking: bool, inside: bool, tools: Sequence[Mapping[str, Any]]) -> Parser:
        """A parser for one reply. `thinking`: split off thinking; `inside`: the output
        starts inside a thinking block; `tools`: the request's (none: calls are not
        read)."""
        from localllm.formats.think import TaggedReply, ThinkingSplitter

        if self.name == HARMONY:
            from localllm.formats.harmony import HarmonyReply

            return HarmonyReply()
        splitter = ThinkingSplitter(inside) if thinking else None
        if not tools:
            return TaggedReply(splitter, None)
        if self.name == DEEPSEEK:
            from localllm.formats.deepseek import DeepSeekCalls

            return TaggedReply(splitter, DeepSeekCalls())
        if self.name == QWEN3_CODER:
            from localllm.formats.xmlcalls import XmlCalls

            return TaggedReply(splitter, XmlCalls(tools))
        from localllm.formats.jsoncalls import JsonCalls

        return TaggedReply(splitter, JsonCalls())


def thinks(template: str | None) -> bool:
    """Whether a model with this chat template thinks (the `thinking` capability)."""
    return any(mark in (template or "") for mark in _THINKING_MARKS)


def format_for(template: str | None) -> Format:
    """The output format of a model that runs with this chat template (Jinja or Go)."""
    from localllm.formats import deepseek, harmony, jsoncalls, think

    text = template or ""
    if harmony.CHANNEL in text:
        return Format(HARMONY, harmony.PRESERVED, "harmony")
    if deepseek.CALL_BEGIN in text or "tool\u2581call\u2581begin" in text:
        # V3 and R1 write `function<sep>NAME` and fence the JSON; V3.1 `NAME<sep>JSON`.
        syntax = "deepseek" if "```json" in text else "deepseek-v3.1"
        return Format(DEEPSEEK, (think.OPEN, think.CLOSE, *deepseek.PRESERVED), syntax)
    if "<function=" in text and "<parameter=" in text:
        # Forced calls are written as Hermes JSON inside <tool_call>, which it reads too.
        tags = (think.OPEN, think.CLOSE, jsoncalls.HERMES, jsoncalls.HERMES_CLOSE)
        return Format(QWEN3_CODER, tags, "hermes")
    # The forced-call grammar's syntax names (`localllm.constraints.grammar`).
    syntax = (
        "hermes" if jsoncalls.HERMES in text else "mistral" if jsoncalls.MISTRAL in text else "bare"
    )
    preserved = (think.OPEN, think.CLOSE, *jsoncalls.MARKERS, jsoncalls.HERMES_CLOSE)
    return Format(TAGGED, preserved, syntax)
