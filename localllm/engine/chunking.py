"""How much of a waiting prompt a step takes while other streams generate.

A step that decodes a prompt chunk beside the running streams holds each of them for
as long as the chunk takes. A fixed chunk (the micro-batch, 512 tokens) is a few
milliseconds on a GPU but half a second on two CPU cores, and a 32k-token prompt
arriving then froze every other answer for its whole prefill. The chunk is sized
instead so that such a step takes about `TARGET_S`: it shrinks when a mixed step ran
long and grows back while they run short, between `MIN_TOKENS` and the micro-batch.
The waiting prompts share that chunk, and it leaves room for the streams' own rows in
one micro-batch: a step of two micro-batches runs them one after the other, and the
streams wait for both; so do they when several prompts each take a chunk.
With nothing else generating, a prompt takes whole batches.
"""

from __future__ import annotations

TARGET_S = 0.04
"""What a step that carries a prompt chunk should take, at most (the running streams'
gap between two tokens)."""
MIN_TOKENS = 16


class ChunkSize:
    def __init__(self, largest: int) -> None:
        self.largest = max(largest, MIN_TOKENS)
        self.tokens = self.largest

    def share(self, rows: int) -> int:
        """Prompt tokens a step may take beside `rows` rows of generating streams."""
        return max(MIN_TOKENS, min(self.tokens, self.largest - rows))

    def update(self, taken: int, seconds: float) -> None:
        """A step took `seconds` with `taken` prompt tokens beside generating streams."""
        if taken <= 0 or seconds <= 0:
            return
        if seconds > TARGET_S:
            self.tokens = max(MIN_TOKENS, int(taken * TARGET_S / seconds))
        elif taken >= self.tokens:
            self.tokens = min(self.largest, max(self.tokens + 1, int(self.tokens * 1.25)))
