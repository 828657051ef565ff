"""The core's events as OpenAI's Chat Completions and Completions answers: a whole
object, or SSE chunks ending with `data: [DONE]`; errors as `{"error": {message, type,
code}}`, in the stream too once it has begun."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from localllm.dialects.logprobs import columns, entries
from localllm.dialects.wire import data
from localllm.errors import ContextOverflow, message_of
from localllm.inference.events import Delta, Event, Finished, ToolCall, Usage, arguments_json
from localllm.inference.ids import new_id

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
TYPES = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    503: "overloaded_error",
}
DONE = b"data: [DONE]\n\n"


def error_body(status: int, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    """OpenAI's error; a prompt longer than the context in OpenAI's own words and code
    (`context_length_exceeded`), which Codex and the SDKs act on."""
    if isinstance(exc, ContextOverflow):
        text = (
            f"This model's maximum context length is {exc.n_ctx} tokens. However, your "
            f"messages resulted in {exc.prompt_tokens} tokens. Please reduce the length of "
            f"the messages. ({message})"
        )
        return {"error": {"message": text, "type": "invalid_request_error", "param": "messages",
                          "code": "context_length_exceeded"}}  # fmt: skip
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"),
                      "code": status}}  # fmt: skip


def stream_error(exc: BaseException) -> bytes:
    """A failure after the 200, as the stream's last events."""
    return data({"error": {"message": message_of(exc), "type": "server_error"}}) + DONE


def usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.prompt_tokens + u.output_tokens,
        # OpenAI's field for prompt tokens served from the cache (the slot's prefix).
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }


def tool_calls(calls: tuple[ToolCall, ...], first: int = 0) -> list[dict[str, Any]]:
    """OpenAI's tool calls; `first`: the index of the first (in a stream)."""
    return [
        {
            "index": first + i,
            "id": f"call_{c.id}",
            "type": "function",
            "function": {"name": c.name, "arguments": arguments_json(c)},
        }
        for i, c in enumerate(calls)
    ]


def chat_head(model: str) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-"),
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "localllm",
    }


def chat_whole(head: dict[str, Any], done: Finished, logprobs: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": done.text}
    if done.thinking:
        message["reasoning_content"] = done.thinking  # llama-server's field
    if done.calls:
        message["content"] = done.text or None
        message["tool_calls"] = [
            {k: v for k, v in c.items() if k != "index"} for c in tool_calls(done.calls)
        ]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": {"content": entries(done.logprobs)} if logprobs else None,
        "finish_reason": FINISH.get(done.reason, "stop"),
    }
    return {**head, "object": "chat.completion", "choices": [choice], "usage": usage(done.usage)}


async def chat_chunks(
    head: dict[str, Any], events: AsyncIterator[Event], logprobs: bool, include_usage: bool
) -> AsyncIterator[bytes]:
    base = {**head, "object": "chat.completion.chunk"}
    role_sent = False
    n_calls = 0

    def chunk(delta: dict[str, Any], event: Event, finish: str | None) -> bytes:
        nonlocal role_sent
        if not role_sent:
            delta, role_sent = {"role": "assistant", **delta}, True
        lp = {"content": entries(event.logprobs)} if logprobs else None
        return data(
            {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}],
            }
        )

    async for event in events:
        if isinstance(event, Delta):
            delta: dict[str, Any] = {}
            if event.text:
                delta["content"] = event.text
            if event.thinking:
                delta["reasoning_content"] = event.thinking
            if event.calls:  # each call as soon as the model has written it
                delta["tool_calls"] = tool_calls(event.calls, n_calls)
                n_calls += len(event.calls)
            yield chunk(delta, event, None)
            continue
        yield chunk({}, event, FINISH.get(event.reason, "stop"))
        if include_usage:
            yield data({**base, "choices": [], "usage": usage(event.usage)})
    yield DONE


class Completion:
    """The legacy completions' answer; its logprobs count characters from the start of
    the prompt (`text_offset`), so one object follows the whole stream."""

    def __init__(self, model: str, prompt: str, logprobs: bool) -> None:
        self.head = {
            "id": new_id("cmpl-"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        self.offset = len(prompt)
        self.logprobs = logprobs

    def _choice(self, event: Event, text: str, finish: str | None) -> dict[str, Any]:
        lp = None
        if self.logprobs:
            lp, self.offset = columns(event.logprobs, self.offset)
        return {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}

    def whole(self, done: Finished) -> dict[str, Any]:
        choice = self._choice(done, done.text, FINISH.get(done.reason, "stop"))
        return {**self.head, "choices": [choice], "usage": usage(done.usage)}

    async def chunks(
        self, events: AsyncIterator[Event], include_usage: bool
    ) -> AsyncIterator[bytes]:
        async for event in events:
            if isinstance(event, Delta):
                yield data({**self.head, "choices": [self._choice(event, event.text, None)]})
                continue
            finish = FINISH.get(event.reason, "stop")
            yield data({**self.head, "choices": [self._choice(event, "", finish)]})
            if include_usage:
                yield data({**self.head, "choices": [], "usage": usage(event.usage)})
        yield DONE
