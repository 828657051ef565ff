"""How much of the waiting prompts a step takes while other streams generate.

A step that decodes prompt tokens beside the running streams holds each of them for
as long as the step takes. A fixed chunk (the micro-batch, 512 tokens) is a few
milliseconds on a GPU but half a second on two CPU cores, and a 32k-token prompt
arriving then froze every other answer for its whole prefill. The prompt tokens of
such a step are sized instead so that it takes about `TARGET_S`: fewer when a mixed
step ran long, more while they run well short, between `MIN_TOKENS` and the batch. All
waiting prompts share that one budget (when each took its own, a burst of prompts
held the streams for all of them at once). With nothing else generating, prompts take
whole batches.
"""

from __future__ import annotations

TARGET_S = 0.04
"""What a step that carries a prompt chunk should take, at most (the running streams'
gap between two tokens)."""
MIN_TOKENS = 16
GROWTH = 1.25
"""How much more a step may take while they run short: only while a step that much
longer would still be within `TARGET_S` (growing from just under it overshot by a
quarter)."""


class ChunkSize:
    def __init__(self, largest: int, start: int | None = None) -> None:
        """`largest`: the batch; `start`: the first guess (the micro-batch: one step of
        2,048 prompt tokens would take seconds on a CPU before the rule shrank it)."""
        self.largest = max(largest, MIN_TOKENS)
        self.tokens = max(MIN_TOKENS, min(start or largest, self.largest))

    def share(self, rows: int) -> int:
        """Prompt tokens a step may take, all prompts together, beside `rows` rows of
        generating streams (and their guesses) in the batch."""
        return max(MIN_TOKENS, min(self.tokens, self.largest - rows))

    def update(self, taken: int, seconds: float) -> None:
        """A step took `seconds` with `taken` prompt tokens beside generating streams."""
        if taken <= 0 or seconds <= 0:
            return
        if seconds > TARGET_S:
            self.tokens = max(MIN_TOKENS, int(taken * TARGET_S / seconds))
        elif taken >= self.tokens and seconds * GROWTH <= TARGET_S:  # still short if grown
            self.tokens = min(self.largest, max(self.tokens + 1, int(self.tokens * GROWTH)))
