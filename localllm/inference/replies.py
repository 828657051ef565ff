"""A reply's raw text turned into what it means (thinking, answer, tool calls) on
its way from the worker to the dialects, as the core's events.

The worker streams the model's text with the format's control tokens written
out; here the format's parser (`localllm.formats`) reads it, so every dialect gets
`Delta`s of answer text with their thinking and each tool call (with its id) as
soon as it is complete, and a `Finished` with the whole reply. Logprobs of text a
parser holds back travel with the next delta out. A raw prompt's reply (no parser)
is its text as it comes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from typing import cast

from localllm.engine.protocol import Done, Piece, TokenLogprob, ToolCall
from localllm.formats import Parser
from localllm.inference.events import Delta, Event, Finished, Reason, Usage
from localllm.inference.ids import new_id


async def parsed(
    events: AsyncIterator[Piece | Done],
    parser: Parser | None,
    keep_thinking: bool,
    usage: Callable[[Done], Usage],
) -> AsyncGenerator[Event]:
    """`events` as the core's: their text parsed by `parser` (None: raw text);
    thinking dropped unless `keep_thinking` (`think: false`)."""
    if parser is None:
        async for event in events:
            if isinstance(event, Piece):
                yield Delta(event.text, logprobs=event.logprobs)
            else:
                yield _finished(event, event.content, "", (), event.logprobs, usage)
        return
    pending: list[TokenLogprob] = []
    content: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    async for event in events:
        pending += event.logprobs
        out = parser.feed(event.text) if isinstance(event, Piece) else parser.finish()
        think = out.thinking if keep_thinking else ""
        if out.content or think or out.calls:
            new_calls = tuple(replace(c, id=new_id()) for c in out.calls)
            content.append(out.content)
            thinking.append(think)
            calls += new_calls
            yield Delta(out.content, think, new_calls, tuple(pending))
            pending = []
        if isinstance(event, Done):
            text, thought = "".join(content), "".join(thinking)
            yield _finished(event, text, thought, tuple(calls), tuple(pending), usage)


def _finished(
    done: Done,
    text: str,
    thinking: str,
    calls: tuple[ToolCall, ...],
    logprobs: tuple[TokenLogprob, ...],
    usage: Callable[[Done], Usage],
) -> Finished:
    reason = "tool_calls" if calls and done.reason == "stop" else done.reason
    return Finished(
        cast(Reason, reason), usage(done), text, thinking, calls, done.stop_sequence, logprobs
    )
