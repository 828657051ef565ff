"""Tool calls: finding them in what the model wrote.

Models write tool calls in their template's own syntax; the three in wide use:

- Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one per call;
- Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`;
- Llama 3.1+: a bare `{"name": ..., "parameters": {...}}`, maybe after `<|python_tag|>`.

All three are looked for, whatever the template. The grammar that forces a call
(`tool_choice` "required") is made in the server (`localllm.constraints.grammar`).
"""

from __future__ import annotations

import json
from typing import Any

from localllm.engine.protocol import ToolCall

_OPENERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "{", "[")


def may_be_call(text: str) -> bool:
    """Whether streamed text could still turn out to be a tool call (so hold it back)."""
    head = text.lstrip()
    return any(head.startswith(o) or o.startswith(head) for o in _OPENERS)


def parse_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """(the text outside tool calls, the calls); no calls if the text holds none."""
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    kept: list[str] = []
    pos = 0
    while pos < len(text):
        starts = [
            i
            for o in ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
            if (i := text.find(o, pos)) >= 0
        ]
        start = min(starts, default=-1)
        if start < 0:
            break
        marker = next(
            o
            for o in ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
            if text.startswith(o, start)
        )
        body = start + len(marker)
        while body < len(text) and text[body].isspace():
            body += 1
        try:
            value, end = decoder.raw_decode(text, body)
        except ValueError:
            break
        found = _calls_in(value)
        if not found:
            break
        kept.append(text[pos:start])
        calls += found
        pos = end
        if marker == "<tool_call>":
            close = text.find("</tool_call>", pos)
            pos = close + len("</tool_call>") if close >= 0 else pos
    kept.append(text[pos:])
    if not calls:
        stripped = text.strip()
        if stripped[:1] in "{[":
            try:
                value, end = decoder.raw_decode(stripped)
            except ValueError:
                return text, ()
            found = _calls_in(value)
            if found and not stripped[end:].strip():
                return "", tuple(found)
        return text, ()
    return "".join(kept).strip(), tuple(calls)


def _calls_in(value: Any) -> list[ToolCall]:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return []
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return []
        if not isinstance(arguments, dict):
            return []
        calls.append(ToolCall(item["name"], arguments))
    return calls
