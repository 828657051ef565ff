"""Feeding a parser a reply cut at every position, as a stream would cut it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from localllm.formats import Parsed, Parser


def cuts(text: str) -> Iterator[list[str]]:
    """The whole text, one character at a time, and every split in two."""
    yield [text]
    yield list(text)
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]


def feed(parser: Parser, chunks: list[str]) -> Parsed:
    out = Parsed()
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.finish()


def check_every_cut(make: Callable[[], Parser], text: str, expected: Parsed) -> None:
    """`make()`'s parser reads `text` as `expected` however the stream cut it."""
    for chunks in cuts(text):
        got = feed(make(), chunks)
        assert got == expected, f"cut as {chunks!r}"
