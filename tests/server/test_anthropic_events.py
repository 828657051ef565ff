"""The order of Anthropic's stream events for a reply that thinks, answers and calls a
tool (localllm/server/anthropic.py), from scripted engine events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from localllm.engine.protocol import Done, Piece, ToolCall
from localllm.server.anthropic import _stream

DONE = Done(1, "tool_calls", prompt_tokens=9, cached_tokens=4, eval_tokens=7, prompt_ns=1,
            eval_ns=1, content="Hi there", tool_calls=(ToolCall("f", {"x": 1}),))  # fmt: skip


async def scripted() -> AsyncIterator[Piece | Done]:
    for event in (
        Piece(1, "", thinking="Hm"),
        Piece(1, "", thinking="m."),
        Piece(1, "Hi"),
        Piece(1, " there"),
        Piece(1, "", calls=(ToolCall("f", {"x": 1}),)),
        DONE,
    ):
        yield event  # fmt: skip


def events() -> list[tuple[str, dict[str, Any]]]:
    async def read() -> bytes:
        response = _stream({"id": "msg_1", "type": "message"}, scripted())
        return b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[misc]

    out = []
    for block in asyncio.run(read()).decode().strip().split("\n\n"):
        kind, data = block.split("\n")
        out.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_blocks_open_and_close_in_order() -> None:
    got = events()
    assert [kind for kind, _ in got] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop",  # thinking, then its signature
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == kind for kind, data in got)
    starts = [d["content_block"] for k, d in got if k == "content_block_start"]
    assert [b["type"] for b in starts] == ["thinking", "text", "tool_use"]
    assert [d["index"] for k, d in got if k == "content_block_start"] == [0, 1, 2]
    deltas = [d["delta"] for k, d in got if k == "content_block_delta"]
    assert [d.get("thinking") or d.get("text") for d in deltas[:2]] == ["Hm", "m."]
    assert json.loads(deltas[-1]["partial_json"]) == {"x": 1}
    final = got[-2][1]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["cache_read_input_tokens"] == 4
