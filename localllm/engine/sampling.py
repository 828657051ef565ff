"""llama.cpp's own sampler chain from Ollama's option names: no per-token work in Python."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import llama_cpp

from localllm.engine.protocol import Sampling, TokenLogprob
from localllm.errors import LocalLLMError


def build_sampler(
    vocab: Any,
    n_vocab: int,
    options: Sampling,
    grammar: str | None,
    eog_tokens: Sequence[int] = (),
    with_draw: bool = True,
) -> Any:
    """A chain: end tokens banned (`ignore_eos`), grammar (when asked), penalties, then
    top-k/typical/top-p/min-p and temperature, then a seeded draw; temperature 0 is
    greedy. `with_draw=False` leaves the draw out (the distribution is what a speculating
    request needs: `engine.rejection`). Free it with `llama_sampler_free`."""
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
    if not with_draw:
        return chain
    seed = options.seed if options.seed is not None and options.seed >= 0 else None
    # Unseeded: llama.cpp draws a fresh seed at creation and at each reset (a chain kept
    # in the graph is reset for its next request: `graph_sampling`).
    draw = seed & 0xFFFFFFFF if seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
    if draw == llama_cpp.LLAMA_DEFAULT_SEED and seed is not None:
        draw -= 1  # a seed that happens to be llama.cpp's "random" value stays fixed
    add(chain, llama_cpp.llama_sampler_init_dist(draw))
    return chain


class NoTokenAllowed(LocalLLMError):
    """A request's grammar allows none of the tokens the model can write next."""


class GuardedDraw:
    """`llama_sampler_sample` for chains with a grammar, made safe for the worker.

    llama.cpp's sampler throws a C++ exception, which ends the whole process, when
    it must accept a token that the grammar forbids: what it does when the grammar
    allows no token at all (a format no token of this vocabulary can spell, every
    end token banned after a complete answer). This draw runs the same chain on the
    logits (`llama_sampler_apply`), checks that the chosen token is allowed (its
    logit is finite) and only then accepts it; otherwise the request alone ends
    with `NoTokenAllowed`. It copies the logits once per token, so only requests
    with a grammar take this path.
    """

    def __init__(self, n_vocab: int) -> None:
        import numpy as np

        self._n_vocab = n_vocab
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._data = np.zeros(n_vocab, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])

    def __call__(self, sampler: Any, ctx: Any, index: int) -> int:
        import ctypes
        import math

        import numpy as np

        logits = llama_cpp.llama_get_logits_ith(ctx, index)
        data = self._data
        data["id"] = self._ids
        data["logit"] = np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
        data["p"] = 0.0
        candidates = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=self._n_vocab,
            selected=-1,
            sorted=False,
        )
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
        chosen = candidates.selected
        if not 0 <= chosen < candidates.size or not math.isfinite(candidates.data[chosen].logit):
            raise NoTokenAllowed("the output format allows no token this model can write next")
        token = int(candidates.data[chosen].id)
        llama_cpp.llama_sampler_accept(sampler, token)
        return token


def token_logprob(
    ctx: Any, index: int, n_vocab: int, token: int, top: int, piece: Callable[[int], bytes]
) -> TokenLogprob:
    """The log probability of `token` at batch output `index`, from the raw logits (a
    log-softmax, as llama-server reports them), with the `top` most likely tokens."""
    import numpy as np

    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
    peak = float(logits.max())
    norm = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
    alternatives: list[tuple[str, float, tuple[int, ...]]] = []
    if top > 0:
        best = np.argpartition(-logits, min(top, n_vocab - 1))[:top]
        for t in sorted(best.tolist(), key=lambda t: -float(logits[t])):
            data = piece(t)
            alternatives.append(
                (data.decode(errors="replace"), float(logits[t]) - norm, tuple(data))
            )
    data = piece(token)
    return TokenLogprob(
        data.decode(errors="replace"), float(logits[token]) - norm, tuple(data), tuple(alternatives)
    )
