"""DeepSeek's tool calls (V3, R1 and V3.1), between its own marker tokens (written
with U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK, shown here
as | and _):

    <|tool_calls_begin|><|tool_call_begin|>function<|tool_sep|>NAME
    ```json
    {ARGUMENTS}
    ```<|tool_call_end|><|tool_calls_end|>

V3.1 drops the `function` type and the code fence: `<|tool_call_begin|>NAME<|tool_sep|>
{ARGUMENTS}<|tool_call_end|>`. Both are read; each call is returned when its end
marker arrives. Thinking (`<think>`) is split before this parser sees the text.
"""

from __future__ import annotations

import json

from localllm.engine.protocol import ToolCall
from localllm.formats.base import BufferedCalls, find_first, partial_suffix


def _marker(words: str) -> str:
    return "<\uff5c" + words.replace("_", "\u2581") + "\uff5c>"


CALLS_BEGIN = _marker("tool_calls_begin")
CALLS_END = _marker("tool_calls_end")
CALL_BEGIN = _marker("tool_call_begin")
CALL_END = _marker("tool_call_end")
SEP = _marker("tool_sep")
PRESERVED = (CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP)


class DeepSeekCalls(BufferedCalls):
    """A `ToolParser` for DeepSeek's markers."""

    def __init__(self) -> None:
        super().__init__()
        self._in_calls = False

    def _scan(self, final: bool) -> tuple[str, tuple[ToolCall, ...]]:
        content: list[str] = []
        calls: list[ToolCall] = []
        while self._buf:
            if not self._in_calls:
                at, tag = find_first(self._buf, (CALLS_BEGIN, CALL_BEGIN))
                if at >= 0:
                    content.append(self._buf[:at])
                    # A lone call marker opens the section too (and stays to be read).
                    self._buf = self._buf[at + len(tag) if tag == CALLS_BEGIN else at :]
                    self._in_calls = True
                    continue
                keep = 0 if final else partial_suffix(self._buf, (CALLS_BEGIN, CALL_BEGIN))
                content.append(self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            head = self._buf.lstrip()
            if head.startswith(CALLS_END):
                self._buf, self._in_calls = head[len(CALLS_END) :], False
            elif head.startswith(CALL_BEGIN):
                end = head.find(CALL_END)
                if end < 0:
                    break
                call = _call(head[len(CALL_BEGIN) : end])
                if call is None:  # not a call after all: its text is answer text
                    content.append(head[: end + len(CALL_END)])
                else:
                    calls.append(call)
                self._buf = head[end + len(CALL_END) :]
            elif not final and any(tag.startswith(head) for tag in (CALLS_END, CALL_BEGIN)):
                break
            else:
                self._in_calls = False
        if final and self._buf:
            content.append(self._buf)
            self._buf = ""
        return "".join(content), tuple(calls)


def _call(body: str) -> ToolCall | None:
    kind, sep, rest = body.partition(SEP)
    if not sep:
        return None
    if kind.strip() == "function":  # V3 / R1: the name on its own line, then a fence
        name, _, rest = rest.partition("\n")
        rest = rest.strip()
        if rest.startswith("```"):
            rest = rest.removeprefix("```json").removeprefix("```").removesuffix("```")
    else:
        name = kind
    try:
        arguments = json.loads(rest) if rest.strip() else {}
    except ValueError:
        return None
    if not name.strip() or not isinstance(arguments, dict):
        return None
    return ToolCall(name.strip(), arguments)
