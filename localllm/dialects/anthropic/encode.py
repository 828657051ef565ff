"""The core's events as Anthropic's Messages answers: content blocks (`thinking`,
`text`, `tool_use`), whole or as named SSE events; errors as `{"type": "error",
"error": {type, message}}`, in the stream too once it has begun."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from localllm.dialects.wire import event
from localllm.errors import ContextOverflow, message_of
from localllm.inference.events import Delta, Event, Finished, ToolCall, Usage, arguments_json
from localllm.inference.ids import new_id

STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}
TYPES = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
}


def error_body(status: int, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    """Anthropic's error; a prompt longer than the context in Anthropic's own words
    ("prompt is too long: N tokens > M maximum"), which Claude Code acts on (it compacts
    the conversation)."""
    if isinstance(exc, ContextOverflow):
        message = f"prompt is too long: {exc.prompt_tokens} tokens > {exc.n_ctx} maximum"
    return {"type": "error", "error": {"type": TYPES.get(status, "api_error"), "message": message}}


def stream_error(exc: BaseException) -> bytes:
    return event("error", error_body(500, message_of(exc)))


def head(model: str) -> dict[str, Any]:
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model}


def tool_use(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": f"toolu_{call.id}",
        "name": call.name,
        "input": call.arguments,
    }


def _stop(done: Finished) -> dict[str, Any]:
    reason = STOP_REASONS.get(done.reason, "stop_sequence" if done.stop_sequence else "end_turn")
    return {"stop_reason": reason, "stop_sequence": done.stop_sequence or None}


def usage(u: Usage) -> dict[str, Any]:
    """Anthropic counts prompt tokens read from the cache apart from `input_tokens`."""
    return {
        "input_tokens": u.prompt_tokens - u.cached_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": u.output_tokens,
    }


def whole(head: dict[str, Any], done: Finished) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if done.thinking:
        content.append({"type": "thinking", "thinking": done.thinking, "signature": ""})
    if done.text or not done.calls:
        content.append({"type": "text", "text": done.text})
    content += [tool_use(c) for c in done.calls]
    return {**head, "content": content, **_stop(done), "usage": usage(done.usage)}


class _Blocks:
    """The content blocks of a streamed message: one open at a time."""

    def __init__(self) -> None:
        self.index, self.kind = -1, ""

    def open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.index, self.kind = self.index + 1, kind
        return [
            *out,
            event(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            ),
        ]

    def delta(self, delta: dict[str, Any]) -> bytes:
        return event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.index, "delta": delta},
        )

    def close(self) -> list[bytes]:
        if not self.kind:
            return []
        out = []
        if self.kind == "thinking":
            out.append(self.delta({"type": "signature_delta", "signature": ""}))
        self.kind = ""
        return [
            *out,
            event("content_block_stop", {"type": "content_block_stop", "index": self.index}),
        ]


async def stream(
    head: dict[str, Any], events: AsyncIterator[Event], prompt: Usage
) -> AsyncIterator[bytes]:
    """message_start (with the prompt's real `input_tokens`, which Claude Code reads
    for its context meter), then for each block content_block_start, its deltas and
    content_block_stop; message_delta (stop reason, usage), message_stop."""
    message = {
        **head,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage(prompt),
    }
    yield event("message_start", {"type": "message_start", "message": message})
    blocks = _Blocks()
    async for item in events:
        if isinstance(item, Finished):
            out: list[bytes] = []
            if blocks.index < 0:  # an empty answer is one empty text block
                out += blocks.open("text", {"type": "text", "text": ""})
            out += blocks.close()
            out.append(
                event(
                    "message_delta",
                    {"type": "message_delta", "delta": _stop(item), "usage": usage(item.usage)},
                )
            )
            out.append(event("message_stop", {"type": "message_stop"}))
            for chunk in out:
                yield chunk
            return
        assert isinstance(item, Delta)
        for part, text in (("thinking", item.thinking), ("text", item.text)):
            if not text:
                continue
            if blocks.kind != part:
                for chunk in blocks.open(part, {"type": part, part: ""}):
                    yield chunk
            yield blocks.delta({"type": f"{part}_delta", part: text})
        for call in item.calls:
            for chunk in blocks.open("tool_use", {**tool_use(call), "input": {}}):
                yield chunk
            yield blocks.delta({"type": "input_json_delta", "partial_json": arguments_json(call)})
            for chunk in blocks.close():
                yield chunk
