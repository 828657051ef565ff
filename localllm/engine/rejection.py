"""Sampled requests that speculate: the accept/reject rule keeps the model's distribution.

A drafter proposes one token `g` per position (its own greedy pick, or a lookup's:
a point mass). With `p` the distribution the request's sampler chain gives at that
position (penalties, top-k, top-p, min-p and temperature applied, as
`sampling.build_sampler` builds it, without the final draw), the guess is taken
with probability `p(g)`; otherwise the token is drawn from `p` without `g`,
renormalised. Either way the token follows `p` exactly (Leviathan et al. 2023,
Chen et al. 2023), so a sampled answer is as likely as without speculation. The
draws come from the request's own seeded generator: the same seed, model and
settings give the same answer.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Sequence
from typing import Any

import llama_cpp


def accept_or_resample(
    ids: Sequence[int], probs: Sequence[float], guess: int | None, u: float, v: float
) -> int:
    """The token at one position: `guess` when `u < p(guess)`, else a draw by `v` from
    the rest of `p` (`u`, `v` uniform in [0, 1); `guess` None: a plain draw by `v`)."""
    total = 1.0
    if guess is not None:
        for token, p in zip(ids, probs, strict=True):
            if token == guess:
                if u < p:
                    return guess
                total = 1.0 - p
                break
    target = v * total
    last = None
    for token, p in zip(ids, probs, strict=True):
        if token == guess or p <= 0.0:
            continue
        last = token
        target -= p
        if target < 0.0:
            return token
    if last is None:  # the guess held all the mass, yet u >= p: rounding
        assert guess is not None
        return guess
    return last  # rounding left a sliver past the last token


class RejectionSampler:
    """One sampled request's draws while it speculates: the chain's distribution from
    the logits of each position, then `accept_or_resample` with its own generator."""

    def __init__(self, chain: Any, n_vocab: int, seed: int | None) -> None:
        import numpy as np

        self.chain = chain
        """A chain without its final draw (`build_sampler(..., with_draw=False)`)."""
        self._n_vocab = n_vocab
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._data = np.zeros(n_vocab, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
        self._random = random.Random(seed)

    def __call__(self, ctx: Any, index: int, guess: int | None = None) -> int:
        ids, probs = self.distribution(ctx, index)
        token = accept_or_resample(ids, probs, guess, self._random.random(), self._random.random())
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
