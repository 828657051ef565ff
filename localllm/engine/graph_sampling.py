"""Which sampler chain each sequence has in llama.cpp's graph (backend sampling).

Attaching or detaching a chain (`llama_set_sampler`) makes llama.cpp plan its graph
again at the next decode (a scheduler reserve: tens of milliseconds on a GPU, for
every stream in the batch). So a chain stays attached when its request ends, and the
next request on that sequence with the same sampling resets and reuses it. And what
is attached for a plain greedy request changes only where nobody waits for it: one
admitted while others run (`quiet` false) keeps its sequence as it is, sampled by
the chain there when it is its own kind, else read off the host logits with the
step's other greedy rows (`engine.greedy`; an argmax either way, so the answer is
the same). A sampled request still gets its chain in the graph whoever runs (its
seeded draws must not depend on that), and a request that needs the logits (a
grammar, logprobs, guesses drawn by the accept/reject rule) detaches it.

Every attached chain is in every decode's graph, also when its sequence is not in the
batch: llama.cpp keeps the graph's shape by building an idle sequence's sampler on a
dummy row (marked not to compute; its nodes still cost the host each step). So the
greedy chains the context is made with are detached at the start, and a request
admitted while no one runs (`keep_only`) detaches the chains the others left.
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
        self.changes = 0
        """Chains attached or detached so far: each a re-plan at the next decode."""
        for seq in range(n_seq):  # nobody runs yet: the re-plan costs no one a token
            self.detach(seq)

    def chain_for(self, seq: int, request: Generate, build: Callable[[], Any]) -> tuple[Any, bool]:
        """(the chain to sample `request` with on sequence `seq`, whether the request
        owns it, so frees it when it ends). Always in the graph where it can be: a
        seeded draw there and on the host may differ, and its answer must not depend
        on who else was running."""
        if not self.enabled:
            return build(), True
        if request.grammar is not None or request.sampling.logprobs >= 0:
            self.detach(seq)  # sampled on the CPU, from the logits
            return build(), True
        kept = self._reused(seq, request)
        if kept is not None:
            return kept, False
        new, old = build(), self._chains[seq]
        self._set(seq, new)
        if old is not None:
            llama_cpp.llama_sampler_free(old)
        self._chains[seq], self._keys[seq] = new, chain_key(request.sampling)
        self._attached[seq] = True
        return new, False

    def greedy(
        self, seq: int, request: Generate, build: Callable[[], Any], wanted: bool, quiet: bool
    ) -> Any:
        """The chain a plain greedy `request` is sampled with in the graph on `seq`, or
        None: its row is read off the host logits with the step's other greedy rows.
        `wanted`: the graph is the better place at this many streams."""
        kept = self._reused(seq, request)
        if kept is not None:
            return kept
        if wanted and quiet:
            return self.chain_for(seq, request, build)[0]
        self.detach(seq)  # free when detached; else another's chain, which must go
        return None

    def _reused(self, seq: int, request: Generate) -> Any:
        """The chain attached to `seq` when it samples `request`'s way, reset; else None."""
        chain = self._chains[seq]
        if chain is None or self._keys[seq] != chain_key(request.sampling):
            return None
        llama_cpp.llama_sampler_reset(chain)
        return chain

    def keep_only(self, seq: int) -> None:
        """Detach every chain but `seq`'s: nobody runs, so the re-plan holds no one."""
        for other in range(len(self._attached)):
            if other != seq:
                self.detach(other)

    @property
    def attached(self) -> int:
        """Sequences with a chain in the graph (each in every decode's graph)."""
        return sum(self._attached)

    def detach(self, seq: int) -> None:
        """Sequence `seq` is sampled from its logits on the host from its next decode."""
        if self._attached[seq]:
            self._set(seq, None)
            self._attached[seq] = False
        if self._chains[seq] is not None:
            llama_cpp.llama_sampler_free(self._chains[seq])
            self._chains[seq], self._keys[seq] = None, None

    def _set(self, seq: int, chain: Any) -> None:
        self.model.use_sampler(seq, chain)
        self.changes += 1

    def close(self) -> None:
        for seq in range(len(self._chains)):
            self.detach(seq)
