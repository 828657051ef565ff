"""The core's events as Ollama's replies: one JSON object, or NDJSON chunks whose last
has `done: true` and the timings (in nanoseconds); errors as `{"error": message}`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from localllm.dialects.logprobs import entries
from localllm.inference.events import Delta, Event, Finished, ToolCall, Usage
from localllm.models.changes import Progress

Fields = Callable[[str, str, tuple[ToolCall, ...]], dict[str, Any]]
"""The route's own fields of a chunk, from (text, thinking, tool calls)."""


def error_body(status: int, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    return {"error": message}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def head(name: str) -> dict[str, Any]:
    """The fields every Ollama response chunk starts with."""
    return {"model": name, "created_at": iso(time.time())}


def timings(reason: str, usage: Usage) -> dict[str, Any]:
    return {
        "done_reason": reason if reason != "tool_calls" else "stop",
        "total_duration": usage.total_ns,
        "load_duration": usage.load_ns,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": usage.prompt_ns,
        "eval_count": usage.output_tokens,
        "eval_duration": usage.eval_ns,
        # beyond Ollama's shape: what speculative decoding did for this answer
        "speculation": {
            "drafted": usage.drafted,
            "accepted": usage.accepted,
            "passes": usage.passes,
        },
    }


def response(content: str, thinking: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    """`/api/generate`'s fields."""
    return {"response": content, **({"thinking": thinking} if thinking else {})}


def message(content: str, thinking: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    """`/api/chat`'s fields."""
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        out["thinking"] = thinking
    if calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments}} for c in calls
        ]
    return {"message": out}


def _logprobs(event: Event) -> dict[str, Any]:
    return {"logprobs": entries(event.logprobs)} if event.logprobs else {}


def whole(model: str, done: Finished, fields: Fields) -> dict[str, Any]:
    return {
        **head(model),
        **fields(done.text, done.thinking, done.calls),
        **_logprobs(done),
        "done": True,
        **timings(done.reason, done.usage),
    }


async def chunks(
    model: str, events: AsyncIterator[Event], fields: Fields
) -> AsyncIterator[dict[str, Any]]:
    """A chunk for each delta (each tool call in the chunk where it completed), then
    the last with the timings."""
    async for event in events:
        if isinstance(event, Delta):
            yield {
                **head(model),
                **fields(event.text, event.thinking, event.calls),
                **_logprobs(event),
                "done": False,
            }
        else:
            yield {
                **head(model),
                **fields("", "", ()),
                **_logprobs(event),
                "done": True,
                **timings(event.reason, event.usage),
            }


def loaded(model: str, load_ns: int, fields: dict[str, Any]) -> dict[str, Any]:
    """The answer to an empty prompt: loaded (or with keep_alive 0, unloaded)."""
    if load_ns < 0:
        return {**head(model), **fields, "done": True, "done_reason": "unload"}
    return {**head(model), **fields, "done": True, "done_reason": "load", "load_duration": load_ns}


def progress(step: Progress) -> dict[str, Any]:
    """A pull's or create's step as Ollama's `{status, digest, total, completed}`."""
    if step.plan:
        # Beyond Ollama's shape: the planner's reasons, for `localllm run`.
        return {"status": step.status, "plan": list(step.plan)}
    if step.file is None:
        return {"status": step.status}
    return {
        "status": step.status,
        "digest": step.file,
        "total": step.total,
        "completed": step.completed,
    }
