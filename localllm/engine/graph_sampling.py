"""Which sampler chain each sequence has in llama.cpp's graph (backend sampling).

Attaching or detaching a chain (`llama_set_sampler`) makes llama.cpp plan its graph
again at the next decode (a scheduler reserve: tens of milliseconds on a GPU, for
every stream in the batch). So a chain stays attached when its request ends, and
the next request on that sequence with the same sampling resets and reuses it;
only a different sampling, or a request that needs the logits on the host (a
grammar, logprobs, a plain greedy one in a busy batch: `engine.greedy`), changes
what is attached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import llama_cpp

from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate, Sampling


def chain_key(sampling: Sampling) -> Sampling:
    """What a chain is made of: the sampling without what only the job watches."""
    return replace(sampling, num_predict=0, stop=(), logprobs=-1)


class GraphSamplers:
    def __init__(self, model: LlamaModel, n_seq: int) -> None:
        self.model = model
        self.enabled = model.samples_in_graph
        self._chains: list[Any] = [None] * n_seq
        """Chains this object made and attached (freed when replaced or detached)."""
        self._keys: list[Sampling | None] = [None] * n_seq
        self._attached = [self.enabled] * n_seq
        """A chain is attached (at first the greedy one the context was made with)."""

    def chain_for(self, seq: int, request: Generate, build: Callable[[], Any]) -> tuple[Any, bool]:
        """(the chain to sample `request` with on sequence `seq`, whether the request
        owns it, so frees it when it ends)."""
        if not self.enabled:
            return build(), True
        if request.grammar is not None or request.sampling.logprobs >= 0:
            self.detach(seq)  # sampled on the CPU, from the logits
            return build(), True
        key = chain_key(request.sampling)
        chain = self._chains[seq]
        if chain is not None and self._keys[seq] == key:
            llama_cpp.llama_sampler_reset(chain)
            return chain, False
        new = build()
        self.model.use_sampler(seq, new)
        if chain is not None:
            llama_cpp.llama_sampler_free(chain)
        self._chains[seq], self._keys[seq], self._attached[seq] = new, key, True
        return new, False

    def detach(self, seq: int) -> None:
        """Sequence `seq` is sampled from its logits on the host from its next decode."""
        if self._attached[seq]:
            self.model.use_sampler(seq, None)
            self._attached[seq] = False
        if self._chains[seq] is not None:
            llama_cpp.llama_sampler_free(self._chains[seq])
            self._chains[seq], self._keys[seq] = None, None

    def close(self) -> None:
        for seq in range(len(self._chains)):
            self.detach(seq)
