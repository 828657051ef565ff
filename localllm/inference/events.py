"""What a running request yields, the same for every dialect: deltas of the answer,
then one `Finished` with the whole answer, why it ended and what it cost.

A dialect's encoder turns these into its wire format, streamed or whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from localllm.engine.protocol import TokenLogprob, ToolCall

__all__ = [
    "Delta",
    "Event",
    "Finished",
    "TokenLogprob",
    "ToolCall",
    "Usage",
    "arguments_json",
]

Reason = Literal["stop", "length", "tool_calls", "cancel"]


@dataclass(frozen=True)
class Delta:
    """The next part of the answer: text, thinking, tool calls completed in it."""

    text: str = ""
    thinking: str = ""
    calls: tuple[ToolCall, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Of `prompt_tokens`, those reused from the KV cache (not computed again)."""
    output_tokens: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0
    load_ns: int = 0
    """Waiting for the model to load (0 when it was loaded)."""
    total_ns: int = 0
    """From the request's start to its end."""
    drafted: int = 0
    accepted: int = 0
    passes: int = 0
    """Speculative decoding: tokens guessed, those taken, and decode passes."""


@dataclass(frozen=True)
class Finished:
    reason: Reason
    usage: Usage
    text: str = ""
    """The whole answer (thinking and tool-call text apart)."""
    thinking: str = ""
    calls: tuple[ToolCall, ...] = ()
    stop_sequence: str = ""
    """The stop sequence that ended the answer, if one did."""
    logprobs: tuple[TokenLogprob, ...] = ()
    """Streamed: logprobs of tokens no delta carried; whole: the answer's."""


Event = Delta | Finished


def arguments_json(call: ToolCall) -> str:
    """A call's arguments as the JSON text every dialect sends: keys in the order the
    model wrote them and characters as they are (no `\\u` escapes), so the text a
    client sends back renders as the model wrote it and the cached prefix holds."""
    return json.dumps(call.arguments, ensure_ascii=False)
