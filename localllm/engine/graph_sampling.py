"""Which sampler chain each sequence has in llama.cpp's graph (backend sampling).

Every sequence starts with its "home" chain: the greedy argmax of `engine.graph_argmax`,
one op for all rows of a decode, so a plain greedy request, the common one, runs
wherever it lands and changes nothing. Attaching or detaching a chain
(`llama_set_sampler`) makes llama.cpp plan its graph again at the next decode (a
scheduler reserve: tens of milliseconds on a GPU, for every stream in the batch), so:

- a sampled request gets its own chain in the graph whoever runs (its seeded draws
  must not depend on that); the chain stays attached when it ends, and the next
  request of the same sampling on that sequence resets and reuses it;
- a request that needs the logits (a grammar, logprobs, guesses drawn by the
  accept/reject rule) detaches its sequence's chain;
- a greedy request on a sequence left without a chain is read off the host logits
  (`engine.greedy`) while others run, and goes home when no one runs (`quiet`); one
  on a sequence holding another request's chain goes home (one change either way);
- a request admitted while no one runs sends every other sequence home
  (`home_others`), so the cost of changes falls where nobody waits.
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
    """The request chains of one engine; the home chains are the model's."""

    def __init__(self, model: LlamaModel, n_seq: int) -> None:
        self.model = model
        self.enabled = model.samples_in_graph
        self.argmax_rows = model.argmax is not None and model.argmax.usable
        """Whether the home chains are `graph_argmax`'s, read as `graph_argmax.tokens`
        (else llama.cpp's own greedy chain's: `llama_sampler_sample`)."""
        self._bans = model.argmax is not None and model.argmax.bans
        """Whether the home chain also gives the greedy token with end tokens banned."""
        self._chains: list[Any] = [None] * n_seq
        """Request chains this object made and attached (freed when replaced)."""
        self._keys: list[Sampling | None] = [None] * n_seq
        self.changes = 0
        """Chains attached or detached so far: each a re-plan at the next decode."""

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
        kept = self._chains[seq]
        if kept is not None and self._keys[seq] == chain_key(request.sampling):
            llama_cpp.llama_sampler_reset(kept)
            return kept, False
        new = build()
        self.model.use_sampler(seq, new)
        self.changes += 1
        self._free(seq)
        self._chains[seq], self._keys[seq] = new, chain_key(request.sampling)
        return new, False

    def greedy(self, seq: int, request: Generate, quiet: bool) -> Any:
        """The home chain a plain greedy `request` is sampled with on `seq`, or None:
        its row is read off the host logits with the step's other greedy rows."""
        if not self.enabled or (request.sampling.ignore_eos and not self._bans):
            self.detach(seq)
            return None
        if self.model.sampler_of(seq) is None and not quiet:
            return None  # sending it home would hold the others for a re-plan
        return self._go_home(seq)

    def home_others(self, seq: int) -> None:
        """Send every sequence but `seq` home: nobody runs, so the re-plans hold no one."""
        if self.argmax_rows:
            for other in range(len(self._chains)):
                if other != seq:
                    self._go_home(other)

    @property
    def home(self) -> int:
        """Sequences with their home chain attached."""
        return sum(self.model.at_home(seq) for seq in range(len(self._chains)))

    @property
    def attached(self) -> int:
        """Sequences with a chain in the graph (each in every decode's graph)."""
        return sum(self.model.sampler_of(seq) is not None for seq in range(len(self._chains)))

    def detach(self, seq: int) -> None:
        """Sequence `seq` is sampled from its logits on the host from its next decode."""
        if self.model.sampler_of(seq) is not None:
            self.model.use_sampler(seq, None)
            self.changes += 1
        self._free(seq)

    def _go_home(self, seq: int) -> Any:
        if self.model.at_home(seq):
            return self.model.sampler_of(seq)
        chain = self.model.send_home(seq)
        self.changes += 1
        self._free(seq)
        return chain

    def _free(self, seq: int) -> None:
        """Free `seq`'s request chain, which no context holds any more."""
        if self._chains[seq] is not None:
            llama_cpp.llama_sampler_free(self._chains[seq])
            self._chains[seq], self._keys[seq] = None, None

    def close(self) -> None:
        """Detach the chains of this engine's requests; the home chains stay."""
        for seq in range(len(self._chains)):
            if self._chains[seq] is not None:
                self.detach(seq)
