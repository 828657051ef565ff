"""Tool calls written as JSON, the three forms in wide use:

- Hermes / Qwen2.5 / Qwen3: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one
  block per call;
- Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`, or the newer
  `[TOOL_CALLS]name[ARGS]{...}` of Mistral Small 3.2 and Devstral;
- Llama 3.1+: a bare `{"name": ..., "parameters": {...}}` as the whole answer, maybe after
  `<|python_tag|>`.

All three markers are looked for whatever the template says (models trained on one
often write another); a bare JSON object counts only at the start of the answer.
Each call is returned as soon as its JSON is complete.
"""

from __future__ import annotations

import json
from typing import Any

from localllm.engine.protocol import ToolCall
from localllm.formats.base import BufferedCalls, find_first, partial_suffix

HERMES, MISTRAL, PYTHON_TAG = "<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"
MARKERS = (HERMES, MISTRAL, PYTHON_TAG)
HERMES_CLOSE = "</tool_call>"
MISTRAL_ARGS = "[ARGS]"
BARE = ""


class JsonCalls(BufferedCalls):
    """A `ToolParser` for the JSON forms above."""

    def __init__(self) -> None:
        super().__init__()
        self._marker: str | None = None
        """Inside a call opened by this marker (BARE: a bare JSON object)."""
        self._started = False
        """Some answer text went out already (a bare object no longer counts)."""
        self._closing = False
        """A Hermes call just ended: its `</tool_call>` may follow."""
        self._after_call = False
        """A call just ended: white space after it is held (dropped if nothing follows)."""

    def _scan(self, final: bool) -> tuple[str, tuple[ToolCall, ...]]:
        content: list[str] = []
        calls: list[ToolCall] = []
        while self._buf:
            if self._closing and not self._skip_close(final):
                break
            if self._after_call:
                if not self._buf.strip():
                    if final:
                        self._buf = ""
                    break
                self._after_call = False
            if self._marker is not None:
                found = self._call(final)
                if found is None:
                    break
                text, new = found
                content.append(text)
                calls += new
                continue
            at, marker = find_first(self._buf, MARKERS)
            if at >= 0:
                content.append(self._buf[:at])
                self._buf = self._buf[at + len(marker) :]
                self._marker = marker
                continue
            head = self._buf.lstrip()
            if not self._started and (not head or head[0] in "{["):
                if not final and (not head or partial_suffix(head, MARKERS) == len(head)):
                    break  # only spaces, or the start of a marker: wait
                if head and _may_open_call(head, final):
                    self._marker = BARE
                    continue
                if head and not final and len(head) < 3:
                    break  # "{" or "[" alone: the next piece says which
            keep = 0 if final else partial_suffix(self._buf, MARKERS)
            out = self._buf[: len(self._buf) - keep]
            self._buf = self._buf[len(self._buf) - keep :]
            content.append(out)
            self._started = self._started or bool(out.strip())
            if keep:
                break
        if final and self._buf:
            content.append(self._buf)
            self._buf = ""
        return "".join(content), tuple(calls)

    def _skip_close(self, final: bool) -> bool:
        """Drop the `</tool_call>` after a Hermes call; False: wait for more text."""
        head = self._buf.lstrip()
        if head.startswith(HERMES_CLOSE):
            self._buf = head[len(HERMES_CLOSE) :]
        elif not final and HERMES_CLOSE.startswith(head):
            return False
        self._closing = False
        return True

    def _call(self, final: bool) -> tuple[str, list[ToolCall]] | None:
        """(text that was not a call after all, the calls) of the call being read;
        None while it is incomplete."""
        marker = self._marker or ""
        body = self._buf.lstrip()
        name = None
        if marker == MISTRAL and body and body[0] not in "[{":
            at = body.find(MISTRAL_ARGS)
            if at < 0:
                return self._give_up() if final else None
            name, body = body[:at].strip(), body[at + len(MISTRAL_ARGS) :].lstrip()
        end = json_end(body)
        if end is None:
            if final or (marker == HERMES and HERMES_CLOSE in body) or not _could_be_json(body):
                return self._give_up()
            return None
        try:
            value = json.loads(body[:end])
        except ValueError:
            return self._give_up()
        found = calls_in({"name": name, "arguments": value} if name is not None else value)
        if not found:
            return self._give_up()
        self._buf = body[end:]
        self._marker = None
        self._started = True
        self._closing = marker == HERMES
        self._after_call = True
        return "", found

    def _give_up(self) -> tuple[str, list[ToolCall]]:
        """Not a call after all: its text is answer text."""
        text = (self._marker or "") + self._buf
        self._buf, self._marker, self._started = "", None, True
        return text, []


def _may_open_call(head: str, final: bool) -> bool:
    """Whether an answer starting with `head` ({ or [) may be a bare call: `{"...` or `[{`."""
    rest = head[1:].lstrip()
    if not rest:
        return not final
    return rest[0] == ('"' if head[0] == "{" else "{")


def _could_be_json(body: str) -> bool:
    return not body or body[0] in "{["


def json_end(text: str) -> int | None:
    """Where the JSON object or array at the start of `text` ends (brackets balanced
    outside strings); None if it has not ended yet or does not start one."""
    if not text or text[0] not in "{[":
        return None
    depth, in_string, escaped = 0, False, False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def calls_in(value: Any) -> list[ToolCall]:
    """The calls a JSON value holds (one call or a list of them); none if any item is
    not a call."""
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            item = item["function"]  # OpenAI's {"type": "function", "function": {...}}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return []
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                return []
        if not isinstance(arguments, dict):
            return []
        calls.append(ToolCall(item["name"], arguments))
    return calls
