"""The core's events as the Responses API's output: its items (reasoning, messages,
function calls) and the finished response, whole or streamed. A stream is the
response created, then each output item added, its content part, its deltas and their
done events, the item done, and at the end the whole response, completed or
incomplete; every event carries `type` and a `sequence_number`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from localllm.dialects.openai.responses.protocol import ResponsesBody
from localllm.dialects.wire import event
from localllm.errors import message_of
from localllm.inference.events import Delta, Event, Finished, ToolCall, Usage, arguments_json
from localllm.inference.ids import new_id
from localllm.inference.request import CallIn, Message, Text

_PARTS = {"reasoning": "reasoning_text", "message": "output_text"}


def base(body: ResponsesBody) -> dict[str, Any]:
    """The response object before its output: what the request asked for."""
    choice = body.tool_choice
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "model": body.model,
        "status": "in_progress",
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "tools": [t.model_dump(exclude_none=True) for t in body.tools or ()],
        "tool_choice": choice
        if isinstance(choice, str)
        else (choice.model_dump() if choice else "auto"),
        "parallel_tool_calls": True,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": body.reasoning.effort if body.reasoning else None},
        "text": {"format": {"type": "text"}},
        "truncation": body.truncation or "disabled",
        "store": body.store is not False,  # OpenAI's default: kept
        "metadata": body.metadata or {},
        "usage": None,
    }


def call_item(call: ToolCall, status: str = "completed") -> dict[str, Any]:
    arguments = arguments_json(call)
    return {
        "type": "function_call",
        "id": new_id("fc_"),
        "call_id": f"call_{call.id}",
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


def _usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.output_tokens,
        "total_tokens": u.prompt_tokens + u.output_tokens,
    }


def finished(base: dict[str, Any], output: list[dict[str, Any]], done: Finished) -> dict[str, Any]:
    incomplete = done.reason == "length"
    return {
        **base,
        "status": "incomplete" if incomplete else "completed",
        "output": output,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "usage": _usage(done.usage),
    }


def message_item(text: str, status: str, item_id: str | None = None) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": item_id or new_id("msg_"),
        "status": status,
        "role": "assistant",
        "content": content,
    }


class _Events:
    def __init__(self) -> None:
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.text = ""

    def event(self, kind: str, **data: Any) -> bytes:
        self.sequence += 1
        return event(kind, {"type": kind, "sequence_number": self.sequence, **data})

    def where(self) -> dict[str, Any]:
        assert self.open is not None
        return {"item_id": self.open["id"], "output_index": len(self.output)}

    def start(self, kind: str) -> list[bytes]:
        """Open a reasoning or message item (closing the one open)."""
        out = self.close()
        if kind == "reasoning":
            item = {
                "type": "reasoning",
                "id": new_id("rs_"),
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
        else:
            item = {**message_item("", "in_progress"), "content": []}
        self.open, self.text = item, ""
        part = self._part("")
        return [
            *out,
            self.event("response.output_item.added", output_index=len(self.output), item=item),
            self.event("response.content_part.added", **self.where(), content_index=0, part=part),
        ]

    def _part(self, text: str) -> dict[str, Any]:
        assert self.open is not None
        kind = _PARTS[self.open["type"]]
        return {
            "type": kind,
            "text": text,
            **({"annotations": []} if kind == "output_text" else {}),
        }

    def delta(self, kind: str, text: str) -> list[bytes]:
        out = self.start(kind) if self.open is None or self.open["type"] != kind else []
        self.text += text
        name = (
            "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        )
        extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
        return [*out, self.event(name, **self.where(), content_index=0, delta=text, **extra)]

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        item, where = self.open, self.where()
        part = self._part(self.text)
        if item["type"] == "reasoning":
            done = self.event(
                "response.reasoning_text.done", **where, content_index=0, text=self.text
            )
        else:
            done = self.event(
                "response.output_text.done", **where, content_index=0, text=self.text, logprobs=[]
            )
        item = {**item, "status": "completed", "content": [part]}
        self.output.append(item)
        self.open = None
        return [
            done,
            self.event("response.content_part.done", **where, content_index=0, part=part),
            self.event("response.output_item.done", output_index=where["output_index"], item=item),
        ]

    def call(self, call: ToolCall) -> list[bytes]:
        out = self.close()
        item = call_item(call)
        index = len(self.output)
        where = {"item_id": item["id"], "output_index": index}
        out += [
            self.event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            ),
            self.event("response.function_call_arguments.delta", **where, delta=item["arguments"]),
            self.event(
                "response.function_call_arguments.done",
                **where,
                arguments=item["arguments"],
                name=call.name,
            ),
            self.event("response.output_item.done", output_index=index, item=item),
        ]
        self.output.append(item)
        return out


def answer(done: Finished) -> Message:
    """The answer as the conversation's next turn (what a continuation is sent)."""
    calls = tuple(CallIn(c.name, c.arguments, f"call_{c.id}") for c in done.calls)
    text = (Text(done.text),) if done.text else ()
    return Message("assistant", text, done.thinking, calls)


def whole(base: dict[str, Any], done: Finished) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if done.thinking:
        output.append(
            {
                "type": "reasoning",
                "id": new_id("rs_"),
                "summary": [],
                "content": [{"type": "reasoning_text", "text": done.thinking}],
            }
        )
    if done.text or not done.calls:
        output.append(message_item(done.text, "completed"))
    output += [call_item(c) for c in done.calls]
    return finished(base, output, done)


async def stream(
    base: dict[str, Any],
    events: AsyncIterator[Event],
    on_done: Callable[[dict[str, Any], Finished], None] = lambda response, done: None,
) -> AsyncIterator[bytes]:
    """The response created, then each output item added, its content part, its deltas
    and their done events, the item done, and at the end the whole response; a failure
    after the 200 is an `error` event."""
    out = _Events()
    yield out.event("response.created", response=base)
    yield out.event("response.in_progress", response=base)
    try:
        async for item in events:
            chunks: list[bytes] = []
            if isinstance(item, Finished):
                if not out.output and out.open is None:
                    chunks += out.start("message")  # an empty answer is an empty message
                chunks += out.close()
                final = finished(base, out.output, item)
                on_done(final, item)
                kind = (
                    "response.completed"
                    if final["status"] == "completed"
                    else "response.incomplete"
                )
                chunks.append(out.event(kind, response=final))
            elif isinstance(item, Delta):
                if item.thinking:
                    chunks += out.delta("reasoning", item.thinking)
                if item.text:
                    chunks += out.delta("message", item.text)
                for call in item.calls:
                    chunks += out.call(call)
            for chunk in chunks:
                yield chunk
    except Exception as exc:  # after the 200: the error goes in the stream
        yield out.event("error", code="server_error", message=message_of(exc), param=None)
