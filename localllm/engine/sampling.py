"""llama.cpp's own sampler chain from Ollama's option names: no per-token work in Python."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import llama_cpp

from localllm.engine.protocol import Sampling


def build_sampler(
    vocab: Any,
    n_vocab: int,
    options: Sampling,
    grammar: str | None,
    eog_tokens: Sequence[int] = (),
) -> Any:
    """A chain: end tokens banned (`ignore_eos`), grammar (when asked), penalties, then
    top-k/typical/top-p/min-p and temperature, then a seeded draw; temperature 0 is
    greedy. Free it with `llama_sampler_free`."""
    params = llama_cpp.llama_sampler_chain_default_params()
    params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(params)
    add = llama_cpp.llama_sampler_chain_add
    if options.ignore_eos and eog_tokens:
        biases = (llama_cpp.llama_logit_bias * len(eog_tokens))()
        for bias, token in zip(biases, eog_tokens, strict=True):
            bias.token, bias.bias = token, float("-inf")
        add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(eog_tokens), biases))
    if grammar is not None:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not sampler:
            llama_cpp.llama_sampler_free(chain)
            raise ValueError("the grammar for this format could not be compiled")
        add(chain, sampler)
    penalize = (
        options.repeat_penalty != 1.0
        or options.presence_penalty != 0.0
        or options.frequency_penalty != 0.0
    )
    if penalize and options.repeat_last_n != 0:
        last_n = -1 if options.repeat_last_n < 0 else options.repeat_last_n  # -1: the context
        add(
            chain,
            llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                last_n,
                options.repeat_penalty,
                options.frequency_penalty,
                options.presence_penalty,
            ),
        )
    if options.temperature <= 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if options.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(options.top_k))
    if options.typical_p < 1.0:
        add(chain, llama_cpp.llama_sampler_init_typical(options.typical_p, 1))
    if options.top_p < 1.0:
        add(chain, llama_cpp.llama_sampler_init_top_p(options.top_p, 1))
    if options.min_p > 0.0:
        add(chain, llama_cpp.llama_sampler_init_min_p(options.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(options.temperature))
    seed = options.seed if options.seed is not None and options.seed >= 0 else None
    draw = seed & 0xFFFFFFFF if seed is not None else random.getrandbits(32)  # a C uint32
    add(chain, llama_cpp.llama_sampler_init_dist(draw))
    return chain
