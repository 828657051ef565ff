"""A reply's raw text turned into what it means (thinking, answer, tool calls) on
its way from the worker to the API routes.

The worker streams the model's text with the format's control tokens written
out; here the format's parser (`localllm.formats`) reads it, so every route gets
`Piece`s of answer text with their `thinking` and each tool call as soon as it is
complete, and a `Done` whose `content`, `thinking` and `tool_calls` are the whole
reply's. Logprobs of text a parser holds back travel with the next piece out.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from localllm.engine.protocol import Done, Piece, TokenLogprob, ToolCall
from localllm.formats import Parser


async def parsed(
    events: AsyncIterator[Piece | Done], parser: Parser, keep_thinking: bool
) -> AsyncGenerator[Piece | Done]:
    """`events` with their text parsed by `parser`; thinking dropped unless
    `keep_thinking` (`think: false`)."""
    pending: list[TokenLogprob] = []
    content: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    async for event in events:
        pending += event.logprobs
        out = parser.feed(event.text) if isinstance(event, Piece) else parser.finish()
        think = out.thinking if keep_thinking else ""
        if out.content or think or out.calls:
            content.append(out.content)
            thinking.append(think)
            calls += out.calls
            yield Piece(event.id, out.content, tuple(pending), think, out.calls)
            pending = []
        if isinstance(event, Done):
            yield replace(
                event,
                reason="tool_calls" if calls and event.reason == "stop" else event.reason,
                content="".join(content),
                thinking="".join(thinking),
                tool_calls=tuple(calls),
                logprobs=tuple(pending),
            )
