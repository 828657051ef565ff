"""Greedy tokens of every plain greedy stream of a step, in one pass over the logits.

A greedy request with no grammar and no penalties needs no sampler chain: its next
token is the first highest logit. llama.cpp's CPU greedy sampler builds a candidate
array of the whole vocabulary for each stream (1.5 MB for a 128k vocabulary), and
in the graph each stream adds its own argmax subgraph to every decode, which at 64
streams costs about as much as the model's own layers. Here the step's greedy rows
are read in place from the logits llama.cpp copies to the host, split across
threads when there are many: the same tokens (ties go to the lowest id, as in
llama.cpp's greedy sampler), a fraction of the time.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import llama_cpp

from localllm.engine.protocol import Generate

if TYPE_CHECKING:
    from localllm.engine.slots import Slot

FLOATS_PER_THREAD = 1 << 20
"""The fewest logits worth a thread of their own (8 rows of a 128k vocabulary):
handing a slice to a thread costs tens of microseconds."""


def plain_greedy(request: Generate) -> bool:
    """Whether `request` takes the highest logit at every step: temperature 0, no grammar
    and no penalties (as `sampling.build_sampler` reads them; banned end tokens,
    `ignore_eos`, are masked here)."""
    s = request.sampling
    penalize = s.repeat_penalty != 1.0 or s.presence_penalty != 0.0 or s.frequency_penalty != 0.0
    return s.temperature <= 0 and request.grammar is None and (not penalize or s.repeat_last_n == 0)


def greedy_rows(
    outputs: Sequence[tuple[Slot, int]], drafts: Mapping[int, Sequence[int]]
) -> list[tuple[int, bool]]:
    """The logit rows of a step's streams that sample no chain (a stream's guesses'
    rows too, from its `drafts`), each with whether its end tokens are banned."""
    rows: list[tuple[int, bool]] = []
    for slot, index in outputs:
        job = slot.job
        if job is not None and job.sampler is None and job.rejection is None:  # on the host
            ban = job.request.sampling.ignore_eos
            rows.append((index, ban))
            if drafts and (guesses := drafts.get(slot.seq)):
                rows += [(index + 1 + j, ban) for j in range(len(guesses))]
    return rows


def graph_rows(
    outputs: Sequence[tuple[Slot, int]], drafts: Mapping[int, Sequence[int]]
) -> list[tuple[int, int, bool]]:
    """The rows of a step's streams whose token the graph's argmax took
    (`engine.graph_argmax`), each (batch index, its rank among the step's outputs,
    whether its end tokens are banned). `outputs` are in batch order, each stream's
    guesses' rows right after its own."""
    rows: list[tuple[int, int, bool]] = []
    rank = 0
    for slot, index in outputs:
        n_rows = 1 + len(drafts.get(slot.seq, ())) if drafts else 1
        job = slot.job
        if job is not None and job.graph_greedy:
            ban = job.request.sampling.ignore_eos
            rows += [(index + j, rank + j, ban) for j in range(n_rows)]
        rank += n_rows
    return rows


class GreedyRows:
    """Argmax of many logit rows at once (numpy releases the GIL while it scans)."""

    def __init__(self, n_vocab: int, eog: Sequence[int], threads: int, per_thread: int = 0) -> None:
        """`per_thread`: the fewest rows a thread scans (0: `FLOATS_PER_THREAD` worth)."""
        import numpy as np

        self._n_vocab = n_vocab
        self._eog = np.asarray(eog, dtype=np.intp)
        self._banned = frozenset(int(t) for t in eog)
        self._threads = max(1, threads)
        self._per_thread = per_thread or max(1, -(-FLOATS_PER_THREAD // max(n_vocab, 1)))
        self._pool: ThreadPoolExecutor | None = None

    def tokens(self, ctx: Any, rows: Sequence[tuple[int, bool]]) -> dict[int, int]:
        """{batch index: its greedy token} for `rows`, each (a batch index whose logits
        llama.cpp computed, whether its end tokens are banned).

        llama.cpp keeps a step's logits as one block, a row per output in batch order;
        the span of rows asked for is scanned in slices, one per thread."""
        import numpy as np

        if not rows:
            return {}
        block, row_of = self._block(ctx, [index for index, _ in rows])
        wanted = [row_of[index] for index, _ in rows]
        lo, hi = min(wanted), max(wanted) + 1
        threads = min(self._threads, (hi - lo) // self._per_thread)
        if threads < 2:
            found = [int(block[r].argmax()) for r in wanted]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="greedy")
            edges = np.linspace(lo, hi, threads + 1).astype(int).tolist()
            parts = self._pool.map(_argmax, [block[a:b] for a, b in itertools.pairwise(edges)])
            best = np.concatenate(list(parts))
            found = [int(best[r - lo]) for r in wanted]
        for i, (row, (_, ban)) in enumerate(zip(wanted, rows, strict=True)):
            if ban and found[i] in self._banned:  # rare: mask a copy, the logits stay as computed
                masked = block[row].copy()
                masked[self._eog] = -np.inf
                found[i] = int(masked.argmax())
        return {index: token for (index, _), token in zip(rows, found, strict=True)}

    def _block(self, ctx: Any, indices: list[int]) -> tuple[Any, dict[int, int]]:
        """The logits block as an array, and each batch index's row in it."""
        import numpy as np

        base = llama_cpp.llama_get_logits(ctx)
        if not base:
            raise RuntimeError("llama.cpp kept no logits for this step")
        start = ctypes.addressof(base.contents)
        stride = self._n_vocab * ctypes.sizeof(ctypes.c_float)
        row_of: dict[int, int] = {}
        for index in indices:
            pointer = llama_cpp.llama_get_logits_ith(ctx, index)
            if not pointer:
                raise RuntimeError(f"llama.cpp has no logits for batch position {index}")
            row_of[index] = (ctypes.addressof(pointer.contents) - start) // stride
        n_rows = max(row_of.values()) + 1
        return np.ctypeslib.as_array(base, shape=(n_rows, self._n_vocab)), row_of

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _argmax(block: Any) -> Any:
    return block.argmax(axis=1)
