"""A `llama_batch` filled token by token (one sequence per token, as the engine uses
it), and how much of a sequence's cache a new token list can keep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import llama_cpp


class TokenBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.raw: Any = llama_cpp.llama_batch_init(capacity, 0, 1)

    def put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        """Token `i` of the batch: `token` at position `pos` of sequence `seq`; `logits`:
        whether llama.cpp computes the logits after it."""
        b = self.raw
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits

    def decode(self, ctx: Any, n: int) -> int:
        """`llama_decode` of the first `n` tokens; its return code (0: done)."""
        self.raw.n_tokens = n
        return int(llama_cpp.llama_decode(ctx, self.raw))

    def close(self) -> None:
        if self.raw is not None:
            llama_cpp.llama_batch_free(self.raw)
            self.raw = None


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens `a` and `b` share from their start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
