"""The argmax of every output row in one op of llama.cpp's graph (`engine.graph_argmax`),
on the CPU backend, against the logits themselves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from localllm.engine import graph_argmax
from localllm.engine.model import LlamaModel
from localllm.engine.tokenbatch import TokenBatch
from localllm.planner.settings import LoadSettings

pytestmark = pytest.mark.slow
PROMPTS = [[1, 5, 9], [2, 7], [3, 3, 3, 3], [4]]


def decode(model: LlamaModel, all_rows: bool) -> list[int]:
    """One decode of PROMPTS, a sequence each: their last rows (`all_rows`: every row,
    as a stream's guesses are), returning the batch positions with logits."""
    batch = TokenBatch(64)
    n, outputs = 0, []
    for seq, tokens in enumerate(PROMPTS):
        for pos, token in enumerate(tokens):
            wanted = all_rows or pos == len(tokens) - 1
            batch.put(n, token, pos, seq, wanted)
            outputs += [n] if wanted else []
            n += 1
    assert batch.decode(model.ctx, n) == 0
    llama_cpp.llama_synchronize(model.ctx)
    batch.close()
    return outputs


def load(path: Path, backend: bool) -> LlamaModel:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 512, n_seq_max=4, n_threads=2,
                            backend_sampling=backend)  # fmt: skip
    return LlamaModel([str(path)], settings, ())


@pytest.mark.parametrize("all_rows", [False, True], ids=["last-rows", "every-row"])
def test_each_row_gets_its_own_argmax_and_its_argmax_without_end_tokens(
    tiny_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, all_rows: bool
) -> None:
    host = load(tiny_files["tiny"], backend=False)
    rows = decode(host, all_rows)
    logits = [
        np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(host.ctx, i), shape=(host.n_vocab,))
        for i in rows
    ]
    best = [int(row.argmax()) for row in logits]
    # The rows' own winners are this model's "end tokens" now: each row must fall back
    # to its runner-up, never one of them.
    ends = set(best) | {2}
    monkeypatch.setattr(llama_cpp, "llama_vocab_is_eog", lambda _vocab, token: token in ends)
    runner_up = []
    for row in logits:
        masked = row.copy()
        masked[sorted(ends)] = -np.inf
        runner_up.append(int(masked.argmax()))
    host.close()

    graph = load(tiny_files["tiny"], backend=True)
    assert graph.argmax is not None and graph.argmax.usable  # this build's tensor layout
    assert decode(graph, all_rows) == rows
    n_vocab = graph.n_vocab
    plain = graph_argmax.tokens(graph.ctx, n_vocab, [(i, k, False) for k, i in enumerate(rows)])
    banned = graph_argmax.tokens(graph.ctx, n_vocab, [(i, k, True) for k, i in enumerate(rows)])
    assert [plain[i] for i in rows] == best
    assert [banned[i] for i in rows] == runner_up
    last = graph_argmax.tokens(graph.ctx, n_vocab, [(rows[-1], len(rows) - 1, False)])
    assert last == {rows[-1]: best[-1]}  # any row alone, by its rank
    graph.close()


def test_room_for_every_row_of_many_sequences(tiny_files: dict[str, Path]) -> None:
    """llama.cpp sizes each graph by the nodes its samplers report when probed: with 64
    sequences, each with guesses, the views and the shared argmaxes fit."""
    streams, rows_each = 64, 3
    settings = LoadSettings(n_gpu_layers=0, n_ctx=streams * 64, n_seq_max=streams,
                            n_threads=2, backend_sampling=True)  # fmt: skip
    model = LlamaModel([str(tiny_files["tiny"])], settings, ())
    batch = TokenBatch(streams * rows_each)
    for seq in range(streams):
        for pos in range(rows_each):
            batch.put(seq * rows_each + pos, 1 + seq + pos, pos, seq, True)
    assert batch.decode(model.ctx, streams * rows_each) == 0
    rows = [(i, i, False) for i in range(streams * rows_each)]
    tokens = graph_argmax.tokens(model.ctx, model.n_vocab, rows)
    assert len(tokens) == len(rows) and all(0 <= t < model.n_vocab for t in tokens.values())
    batch.close()
    model.close()


def test_rows_of_a_batch_llama_cpp_splits_and_reorders(tiny_files: dict[str, Path]) -> None:
    """Sequences out of order, not consecutive, with different numbers of rows: llama.cpp
    decodes such a batch in several micro-batches and hands the rows back in batch
    order; every row still gets its own argmax."""
    layout = [(2, 3), (0, 1), (5, 2), (1, 1)]  # (sequence, its rows), in batch order

    def decode_layout(model: LlamaModel) -> int:
        batch = TokenBatch(64)
        n = 0
        for seq, rows in layout:
            for pos in range(rows):
                batch.put(n, 3 + seq + pos, pos, seq, True)
                n += 1
        assert batch.decode(model.ctx, n) == 0
        batch.close()
        return n

    settings = LoadSettings(n_gpu_layers=0, n_ctx=8 * 256, n_seq_max=8, n_threads=2)
    host = LlamaModel([str(tiny_files["tiny"])], settings, ())
    n = decode_layout(host)
    best = [
        int(
            np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(host.ctx, i), shape=(host.n_vocab,)
            ).argmax()
        )
        for i in range(n)
    ]
    host.close()
    graph = LlamaModel([str(tiny_files["tiny"])], replace(settings, backend_sampling=True), ())
    assert decode_layout(graph) == n
    picked = graph_argmax.tokens(graph.ctx, graph.n_vocab, [(i, i, False) for i in range(n)])
    assert [picked[i] for i in range(n)] == best
    graph.close()


def test_every_pair_in_one_copy_gives_each_row_its_own(tiny_files: dict[str, Path]) -> None:
    """`GraphArgmax.whole`: a decode of one token a sequence, in sequence order, hands
    every row's pair over through the first row; each row still reads its own, and so
    does the next decode of that shape (llama.cpp reuses the graph, whatever `whole`
    says by then)."""
    streams = 6
    settings = LoadSettings(n_gpu_layers=0, n_ctx=streams * 64, n_seq_max=streams,
                            n_threads=2)  # fmt: skip

    def step(model: LlamaModel, pos: int) -> None:
        batch = TokenBatch(streams)
        for seq in range(streams):
            batch.put(seq, 3 + 5 * seq + pos, pos, seq, True)
        assert batch.decode(model.ctx, streams) == 0
        batch.close()

    host = LlamaModel([str(tiny_files["tiny"])], settings, ())
    best = []
    for pos in range(3):
        step(host, pos)
        best.append([int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(host.ctx, i),
                                                shape=(host.n_vocab,)).argmax())
                     for i in range(streams)])  # fmt: skip
    host.close()
    graph = LlamaModel([str(tiny_files["tiny"])], replace(settings, backend_sampling=True), ())
    assert graph.argmax is not None
    rows = [(i, i, False) for i in range(streams)]
    for pos, whole in enumerate([True, True, False]):
        graph.argmax.whole = whole
        step(graph, pos)
        if pos == 0:  # every pair came over in the first row
            assert llama_cpp.llama_get_sampled_candidates_count_ith(graph.ctx, 0) > 2
            assert llama_cpp.llama_get_sampled_candidates_count_ith(graph.ctx, 1) == 0
        picked = graph_argmax.tokens(graph.ctx, graph.n_vocab, rows)
        assert [picked[i] for i in range(streams)] == best[pos]
        later = graph_argmax.tokens(graph.ctx, graph.n_vocab, rows[3:], first=0)
        assert later == {i: best[pos][i] for i in range(3, streams)}  # rows without the first
    graph.close()
