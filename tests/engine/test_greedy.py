"""Greedy tokens read off the host logits (`engine.greedy`): the very tokens
llama.cpp's greedy sampler picks, on one thread or several, with end tokens banned
as its logit bias bans them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from localllm.engine.greedy import GreedyRows, plain_greedy
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate, Sampling
from localllm.engine.sampling import build_sampler
from localllm.planner.settings import LoadSettings

GREEDY = Sampling(temperature=0, num_predict=8, repeat_penalty=1.0)
PROMPTS = ["Once upon a time", "The capital of", "def main():", "1, 2, 3, 4,", "Hello", "ab"]


@pytest.fixture(scope="module")
def decoded(tiny_files: dict[str, Path]) -> Iterator[tuple[LlamaModel, list[int]]]:
    """A context after one decode of six prompts, every token's logits kept: the
    batch positions with logits."""
    settings = LoadSettings(n_gpu_layers=0, n_ctx=8 * 256, n_seq_max=8, n_threads=2)
    model = LlamaModel([str(tiny_files["tiny"])], settings, ())
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    n = 0
    for seq, prompt in enumerate(PROMPTS):
        for pos, token in enumerate(model.tokenize(prompt, add_special=True)):
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0], batch.logits[n] = seq, True
            n += 1
    batch.n_tokens = n
    assert llama_cpp.llama_decode(model.ctx, batch) == 0
    yield model, list(range(n))
    llama_cpp.llama_batch_free(batch)
    model.close()


def chain_token(model: LlamaModel, index: int, ban: tuple[int, ...] = ()) -> int:
    chain = build_sampler(model.vocab, model.n_vocab, replace(GREEDY, ignore_eos=bool(ban)),
                          None, ban)  # fmt: skip
    try:
        return int(llama_cpp.llama_sampler_sample(chain, model.ctx, index))
    finally:
        llama_cpp.llama_sampler_free(chain)


@pytest.mark.parametrize(("threads", "per_thread"), [(1, 8), (3, 2)])
def test_the_same_tokens_as_llama_cpp_greedy_sampler(
    decoded: tuple[LlamaModel, list[int]], threads: int, per_thread: int
) -> None:
    model, rows = decoded
    greedy = GreedyRows(model.n_vocab, (), threads, per_thread)
    try:
        picked = greedy.tokens(model.ctx, [(i, False) for i in rows])
    finally:
        greedy.close()
    assert picked == {i: chain_token(model, i) for i in rows}


def test_banned_end_tokens_give_the_next_best(decoded: tuple[LlamaModel, list[int]]) -> None:
    model, rows = decoded
    picked = GreedyRows(model.n_vocab, (), 1).tokens(model.ctx, [(i, False) for i in rows])
    ban = tuple(sorted(set(picked.values())))[:2]  # pretend the usual winners end answers
    greedy = GreedyRows(model.n_vocab, ban, 1)
    banned = greedy.tokens(model.ctx, [(i, True) for i in rows])
    assert banned == {i: chain_token(model, i, ban) for i in rows}
    assert not set(banned.values()) & set(ban)
    # The logits themselves are left as computed: the unbanned answer is unchanged.
    assert GreedyRows(model.n_vocab, ban, 1).tokens(model.ctx, [(i, False) for i in rows]) == picked


@pytest.mark.parametrize(
    ("sampling", "grammar", "plain"),
    [
        (GREEDY, None, True),
        (replace(GREEDY, ignore_eos=True, logprobs=3), None, True),
        (replace(GREEDY, repeat_penalty=1.1, repeat_last_n=0), None, True),  # no history
        (replace(GREEDY, repeat_penalty=1.1), None, False),
        (replace(GREEDY, presence_penalty=0.5), None, False),
        (GREEDY, 'root ::= "a"', False),
        (replace(GREEDY, temperature=0.7), None, False),
    ],
)
def test_which_requests_are_read_off_the_logits(
    sampling: Sampling, grammar: str | None, plain: bool
) -> None:
    assert plain_greedy(Generate(1, prompt="x", sampling=sampling, grammar=grammar)) is plain


def test_graph_rows_rank_every_output_of_the_step() -> None:
    """A stream's guesses' rows follow its own; a prompt's last token is an output too:
    each graph-sampled row's rank counts every output before it."""
    from types import SimpleNamespace

    from localllm.engine.greedy import graph_rows

    def slot(seq: int, in_graph: bool, ban: bool = False) -> Any:
        request = SimpleNamespace(sampling=SimpleNamespace(ignore_eos=ban))
        return SimpleNamespace(seq=seq, job=SimpleNamespace(graph_greedy=in_graph, request=request))

    # seq 0 at 0 with 2 guesses (rows 1, 2); seq 1 at 3, sampled by its own chain;
    # seq 2 at 4 banning end tokens; a prompt of seq 3 ends at 9 (5-8 are not outputs).
    outputs = [(slot(0, True), 0), (slot(1, False), 3), (slot(2, True, ban=True), 4),
               (slot(3, True), 9)]  # fmt: skip
    rows = graph_rows(outputs, {0: [7, 8]})
    assert rows == [(0, 0, False), (1, 1, False), (2, 2, False), (4, 4, True), (9, 5, False)]
