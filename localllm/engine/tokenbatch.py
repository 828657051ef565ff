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
    """How many tokens `a` and `b` share from their start. Compared a slice at a time
    (C speed): a 32k-token prompt against a slot's cache costs microseconds, not the
    milliseconds of a Python loop, on the step that admits it."""
    x = a if isinstance(a, list) else list(a)
    y = b if isinstance(b, list) else list(b)
    n = min(len(x), len(y))
    lo, step = 0, 64
    while lo < n:  # galloping: the shared run is found in log(n) slice compares
        hi = min(lo + step, n)
        if x[lo:hi] != y[lo:hi]:
            break
        lo, step = hi, step * 2
    else:
        return n
    while hi - lo > 16:  # the first difference lies in [lo, hi)
        mid = (lo + hi) // 2
        if x[lo:mid] == y[lo:mid]:
            lo = mid
        else:
            hi = mid
    while lo < hi and x[lo] == y[lo]:
        lo += 1
    return lo
