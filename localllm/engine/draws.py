"""How the step takes each output row's token, in one signature (sampler, ctx, index)
so the step and its guesses' check (`Engine._verify`) call them alike: the step's
greedy tokens (the graph's argmax or the host's), drawn by the accept/reject rule,
or a llama.cpp sampler chain's."""

from __future__ import annotations

import llama_cpp

from localllm.engine.rejection import RejectionSampler


def picked(picked: dict[int, int], _sampler: object, _ctx: object, index: int) -> int:
    """The row's token from the step's greedy rows (`engine.greedy`, `graph_argmax`)."""
    return picked[index]


def drawn(draw: RejectionSampler, _sampler: object, ctx: object, index: int) -> int:
    """The row's token by the accept/reject rule of a sampled request that guesses."""
    return draw(ctx, index)


def sample(sampler: object, ctx: object, index: int) -> int:
    """The row's token from the request's chain (in the graph or on its logits)."""
    return int(llama_cpp.llama_sampler_sample(sampler, ctx, index))
