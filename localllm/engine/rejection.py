"""Sampled requests that speculate: each token is drawn from the model's distribution.

A drafter proposes one token `g` per position (its own greedy pick, or a lookup's:
a point mass). The standard rule (Leviathan et al. 2023, Chen et al. 2023) takes
the guess with probability `p(g)` and otherwise draws from `p` without `g`; for a
point-mass draft that is the same as drawing `x` from `p` and taking the guess
exactly when `x == g`, which is what this module does. `p` is the distribution the
request's sampler chain gives at that position (penalties, top-k, top-p, min-p
and temperature, as `sampling.build_sampler` builds it, without the final draw).

Each position's draw comes from its own uniform number, made from the request's
seed and the token's place in the answer. So what a seeded request produces does
not depend on how many tokens were guessed at each step, which the engine chooses
from timings (`speculation.Payoff`): the same seed, model and settings give the
same answer, with or without a draft.
"""

from __future__ import annotations

import ctypes
import os
import random
from collections.abc import Sequence
from typing import Any

import llama_cpp


def inverse_cdf(ids: Sequence[int], probs: Sequence[float], v: float) -> int:
    """The token whose share of the cumulative distribution holds `v` (in [0, 1))."""
    target = v
    for token, p in zip(ids, probs, strict=True):
        target -= p
        if target < 0.0:
            return token
    return ids[-1]  # rounding left a sliver past the last token


class RejectionSampler:
    """One sampled request's draws while it speculates: the chain's distribution from
    the logits of each position, and a uniform number per place in the answer."""

    def __init__(self, chain: Any, n_vocab: int, seed: int | None) -> None:
        import numpy as np

        self.chain = chain
        """A chain without its final draw (`build_sampler(..., with_draw=False)`)."""
        self._n_vocab = n_vocab
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._data = np.zeros(n_vocab, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
        self._seed = seed if seed is not None and seed >= 0 else int.from_bytes(os.urandom(8))
        self.drawn = 0
        """Tokens of the answer drawn so far."""

    def uniform(self, place: int) -> float:
        return random.Random(f"{self._seed}:{place}").random()

    def __call__(self, ctx: Any, index: int) -> int:
        """The next token of the answer, from the logits of batch output `index`."""
        ids, probs = self.distribution(ctx, index)
        token = inverse_cdf(ids, probs, self.uniform(self.drawn))
        self.drawn += 1
        llama_cpp.llama_sampler_accept(self.chain, token)  # penalties see the answer so far
        return token

    def distribution(self, ctx: Any, index: int) -> tuple[list[int], list[float]]:
        """The tokens the chain keeps at batch output `index` and their probabilities,
        most likely first."""
        import numpy as np

        data = self._data
        data["id"] = self._ids
        logits = llama_cpp.llama_get_logits_ith(ctx, index)
        data["logit"] = np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
        candidates = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=self._n_vocab,
            selected=-1,
            sorted=False,
        )
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(candidates))
        # A sampler may point the candidates at its own buffer: read them where they are.
        kept = np.ctypeslib.as_array(candidates.data, shape=(candidates.size,)).copy()
        kept = kept[np.isfinite(kept["logit"])]
        order = np.argsort(-kept["logit"], kind="stable")
        logit = kept["logit"][order].astype(np.float64)
        weights = np.exp(logit - logit[0])
        return kept["id"][order].tolist(), (weights / weights.sum()).tolist()

    def close(self) -> None:
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
