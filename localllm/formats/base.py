"""What every output format shares: the parts a reply is made of, and a hold-back
for tags that arrive cut across streamed pieces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from localllm.engine.protocol import ToolCall


@dataclass(frozen=True)
class Parsed:
    """What a piece of model output turned out to mean, so far."""

    content: str = ""
    thinking: str = ""
    calls: tuple[ToolCall, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.calls)

    def __add__(self, other: Parsed) -> Parsed:
        return Parsed(
            self.content + other.content, self.thinking + other.thinking, self.calls + other.calls
        )


class Parser(Protocol):
    """One reply's output, fed as it streams: each `feed` returns what is known for
    sure (text that may still be the start of a tag stays held back); `finish`
    returns the rest once the model has stopped."""

    def feed(self, text: str) -> Parsed: ...

    def finish(self) -> Parsed: ...


class ToolParser(Protocol):
    """The tool calls in a reply's answer text (after thinking was split off): each
    `feed` returns (content, calls completed so far)."""

    def feed(self, text: str) -> tuple[str, tuple[ToolCall, ...]]: ...

    def finish(self) -> tuple[str, tuple[ToolCall, ...]]: ...


class BufferedCalls(ABC):
    """The shape of a `ToolParser` over a buffer of text not yet known to be answer text
    or a call: `feed` adds to it and scans, `finish` scans for the last time (what is
    left then is answer text)."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        self._buf += text
        return self._scan(final=False)

    def finish(self) -> tuple[str, tuple[ToolCall, ...]]:
        return self._scan(final=True)

    @abstractmethod
    def _scan(self, final: bool) -> tuple[str, tuple[ToolCall, ...]]:
        """What the buffer holds for sure; with `final`, all of it."""


def partial_suffix(text: str, tags: tuple[str, ...]) -> int:
    """The length of the longest end of `text` that is the start of one of `tags`
    (that much must be held back until the next piece says what it is)."""
    best = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), best, -1):
            if text.endswith(tag[:n]):
                best = n
                break
    return best


def find_first(text: str, tags: tuple[str, ...], start: int = 0) -> tuple[int, str]:
    """(where the first of `tags` in `text` starts, which one); (-1, "") if none."""
    found = [(i, tag) for tag in tags if (i := text.find(tag, start)) >= 0]
    return min(found, default=(-1, ""))
