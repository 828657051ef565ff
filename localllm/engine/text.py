"""Tokens to text, as it streams: whole UTF-8 characters only, stop sequences held back.

A token can end in the middle of a multi-byte character, and the text
streamed so far can end with the first characters of a stop sequence; neither
may reach the client until the next tokens settle it.
"""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Bytes in, complete characters out (an incomplete tail waits for more bytes)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return str(self._decoder.decode(data))

    def flush(self) -> str:
        return str(self._decoder.decode(b"", final=True))


class StopFilter:
    """Cuts the text at the first stop sequence and holds back a possible start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False
        self.matched = ""
        """The stop sequence that ended the text (Anthropic's `stop_sequence`)."""

    def feed(self, text: str) -> str:
        """The text that is safe to emit now; sets `stopped` at a stop sequence."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        self._pending += text
        found = [(i, s) for s in self._stops if (i := self._pending.find(s)) >= 0]
        if found:
            cut, self.matched = min(found)
            out, self._pending, self.stopped = self._pending[:cut], "", True
            return out
        hold = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(stop[:k]):
                    hold = k
                    break
        split = len(self._pending) - hold
        out, self._pending = self._pending[:split], self._pending[split:]
        return out

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
