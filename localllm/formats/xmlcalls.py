"""Qwen3-Coder's tool calls, written as XML-like tags inside `<tool_call>`:

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Values are text; each is read as the type the tool's schema declares for it (JSON
for numbers, booleans, arrays and objects, `null` for none; otherwise the text, as
Qwen's own parser does). A `<tool_call>` holding JSON (the Hermes form, which a
forced call is written in) is read too. Each call is returned when it closes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from localllm.engine.protocol import ToolCall
from localllm.formats.base import BufferedCalls, partial_suffix
from localllm.formats.jsoncalls import calls_in

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)</function>", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\n]+)>(.*?)</parameter>", re.DOTALL)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
    "object": (dict,), "null": (type(None),),
}  # fmt: skip


class XmlCalls(BufferedCalls):
    """A `ToolParser` for Qwen3-Coder's tags; `tools` (the request's) give the types."""

    def __init__(self, tools: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        self._types = _declared_types(tools)
        self._inside = False

    def _scan(self, final: bool) -> tuple[str, tuple[ToolCall, ...]]:
        content: list[str] = []
        calls: list[ToolCall] = []
        while self._buf:
            if not self._inside:
                at = self._buf.find(OPEN)
                if at >= 0:
                    content.append(self._buf[:at])
                    self._buf, self._inside = self._buf[at + len(OPEN) :], True
                    continue
                keep = 0 if final else partial_suffix(self._buf, (OPEN,))
                content.append(self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            end = self._buf.find(CLOSE)
            if end < 0:
                if final:  # never closed: what the model wrote is answer text
                    content.append(OPEN + self._buf)
                    self._buf = ""
                break
            body, self._buf, self._inside = self._buf[:end], self._buf[end + len(CLOSE) :], False
            found = self._calls(body)
            if found:
                calls += found
            else:
                content.append(OPEN + body + CLOSE)
        return "".join(content), tuple(calls)

    def _calls(self, body: str) -> list[ToolCall]:
        text = body.strip()
        if text.startswith("{"):
            try:
                return calls_in(json.loads(text))
            except ValueError:
                return []
        calls = []
        for match in _FUNCTION.finditer(text):
            name = match.group(1).strip()
            types = self._types.get(name, {})
            arguments = {
                key.strip(): _value(value, types.get(key.strip(), ()))
                for key, value in _PARAMETER.findall(match.group(2))
            }
            calls.append(ToolCall(name, arguments))
        return calls


def _value(raw: str, types: Sequence[str]) -> Any:
    """A parameter's text as the type its schema declares (the text if none fits)."""
    raw = raw.removeprefix("\n").removesuffix("\n")
    if raw.lower() == "null":
        return None
    if not types or types == ["string"]:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    wanted = tuple(kind for t in types for kind in _JSON_TYPES.get(t, ()))
    fits = isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)
    return value if fits else raw


def _declared_types(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """{tool: {parameter: its JSON types}} from the tools' schemas."""
    out: dict[str, dict[str, list[str]]] = {}
    for tool in tools:
        function = tool.get("function", tool)
        properties = (function.get("parameters") or {}).get("properties") or {}
        out[str(function.get("name"))] = {
            key: [kind] if isinstance(kind := (prop or {}).get("type"), str) else list(kind or [])
            for key, prop in properties.items()
            if isinstance(prop, Mapping)
        }
    return out
