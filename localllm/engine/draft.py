"""A draft model: a small model of the target's vocabulary guesses its next tokens.

It is loaded in the target's worker with its own context and one sequence per
target slot, so each request's draft cache follows that request's text. Before a
target pass, the drafting requests' texts are brought into the draft's cache
(only what is new: the tokens the target accepted since; rejected guesses are cut
off by comparing token lists), then the draft decodes greedily, every drafting
request in one batch per token, up to each one's draft length (`speculation.Pace`).
As in llama-server, a request stops drafting after a token the draft itself gives
less than `P_MIN`: an unsure guess is usually wrong and costs the target a row.

Where the draft's context samples in its graph (every layer on the GPU), each of its
sequences has a top-`TOP_K` chain there, as llama-server's draft: only ten ids and
logits cross to the host per guessed token, and the probability is taken over them.
Otherwise the whole row of logits is read (an argmax and a softmax over the vocabulary
in numpy per guessed token, the larger part of a guess's cost on a GPU).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp

from localllm.engine.model import LlamaModel
from localllm.engine.tokenbatch import TokenBatch, common_prefix
from localllm.errors import LocalLLMError

P_MIN = 0.75
"""llama-server's `--draft-p-min` default."""
TOP_K = 10
"""Candidates sampled in the draft's graph (llama-server's draft sampler, `top_k` 10)."""
VOCAB_SIZE_SLACK = 128
CHECK_FROM_TOKEN = 5
"""As llama.cpp's `common_speculative_are_compatible`: the vocabularies may differ in
size by this much (padding), and must agree on every token's text from this id on."""


class IncompatibleDraft(LocalLLMError):
    """The draft model cannot guess for this model (another vocabulary, a cache that
    cannot be rolled back)."""


def incompatibility(target: LlamaModel, draft: LlamaModel) -> str | None:
    """Why `draft` cannot draft for `target`, in words; None when it can."""
    if draft.recurrent or (draft.has_swa and not draft.settings.swa_full):
        return "its cache cannot be rolled back (recurrent or sliding-window layers)"
    tv, dv = target.vocab, draft.vocab
    if llama_cpp.llama_vocab_type(tv) != llama_cpp.llama_vocab_type(dv):
        return "its tokenizer is of another kind"
    if target.add_bos != draft.add_bos or (target.add_bos and target.bos != draft.bos):
        return "it starts text with another token"
    if llama_cpp.llama_vocab_eos(tv) != llama_cpp.llama_vocab_eos(dv):
        return "it ends text with another token"
    if abs(target.n_vocab - draft.n_vocab) > VOCAB_SIZE_SLACK:
        return f"its vocabulary has {draft.n_vocab} tokens, the model's {target.n_vocab}"
    for token in range(CHECK_FROM_TOKEN, min(target.n_vocab, draft.n_vocab)):
        here = llama_cpp.llama_vocab_get_text(tv, token)
        there = llama_cpp.llama_vocab_get_text(dv, token)
        if here != there:
            return f"token {token} is {there!r} in it, {here!r} in the model"
    return None


@dataclass(frozen=True)
class Ask:
    """One request's part in a round of drafting."""

    seq: int
    text: Sequence[int]
    """Its tokens so far: the prompt and the answer, the last one not yet decoded."""
    k: int
    """How many tokens to guess."""
    ban_eog: bool = False
    """Its answer may not end here (`ignore_eos`): guess no end token either."""


class DraftModel:
    def __init__(self, model: LlamaModel, target: LlamaModel) -> None:
        reason = incompatibility(target, model)
        if reason is not None:
            model.close()
            raise IncompatibleDraft(f"the draft model cannot draft for this model: {reason}")
        self.model = model
        self._n_target_vocab = target.n_vocab
        n_seq = max(1, model.settings.n_seq_max)
        self.cached: list[list[int]] = [[] for _ in range(n_seq)]
        """The tokens each sequence of the draft's cache holds, in order."""
        self._batch = TokenBatch(max(model.settings.n_batch, n_seq))
        self.passes = 0
        """Draft decodes so far (for the profile)."""
        self._scratch: Any = None
        """A row's worth of floats for `_top`, reused for every guessed token."""
        self.caught_up = 0
        """Tokens the last `propose` fed to bring the caches to the texts: a few per
        request, unless a new prompt is being fed (a step whose time is no guide)."""
        self._chains: list[Any] = []
        """Each sequence's top-`TOP_K` chain in the graph (none: read from the logits)."""
        if model.samples_in_graph:
            for _ in range(n_seq):
                chain = llama_cpp.llama_sampler_chain_init(
                    llama_cpp.llama_sampler_chain_default_params()
                )
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(TOP_K))
                self._chains.append(chain)
            if not all(model.use_sampler(seq, c) for seq, c in enumerate(self._chains)):
                for seq in range(n_seq):  # the backend cannot: every row's logits instead
                    model.use_sampler(seq, None)
                self._free_chains()

    @property
    def samples_in_graph(self) -> bool:
        return bool(self._chains)

    def propose(self, asks: Sequence[Ask]) -> dict[int, list[int]]:
        """{sequence: its guesses} for each ask; a request the draft has nothing for is
        left out."""
        live = self._catch_up([(a.seq, a.text) for a in asks if a.k > 0])
        wanted = {a.seq: a.k for a in asks}
        banned = {a.seq for a in asks if a.ban_eog}
        drafts: dict[int, list[int]] = {seq: [] for seq in live}
        m = self.model
        while live:
            n = 0
            rows: dict[int, int] = {}
            for seq, index in live.items():
                token, p = self._top(index, seq in banned)
                if not 0 <= token < self._n_target_vocab:
                    continue  # nothing to guess, or a padding token the model lacks
                drafts[seq].append(token)
                if len(drafts[seq]) >= wanted[seq] or p < P_MIN:
                    continue
                self._batch.put(n, token, len(self.cached[seq]), seq, True)
                self.cached[seq].append(token)
                rows[seq] = n
                n += 1
            if not n:
                break
            self.passes += 1
            if self._batch.decode(m.ctx, n) != 0:
                self._forget(list(rows))
                break
            live = rows
        return {seq: d for seq, d in drafts.items() if d}

    def _catch_up(self, texts: Sequence[tuple[int, Sequence[int]]]) -> dict[int, int]:
        """Bring each sequence's cache towards its text; {sequence: the batch index of
        the logits after its last token}, for those that made it this step."""
        m = self.model
        todo: list[tuple[int, Sequence[int]]] = []
        for seq, text in texts:
            cached = self.cached[seq]
            common = min(common_prefix(cached, text), len(text) - 1)
            if common < len(cached):
                if not llama_cpp.llama_memory_seq_rm(m.memory, seq, common, -1):
                    llama_cpp.llama_memory_seq_rm(m.memory, seq, -1, -1)
                    common = 0
                del cached[common:]
            todo.append((seq, text[common:]))
        # One decode of at most a micro-batch a step, the shortest texts first: the
        # streams already caught up guess this step, and a new prompt is fed a part a
        # step (whole, it held every stream for its full prefill on the draft); it
        # guesses once all of it is in.
        todo.sort(key=lambda t: len(t[1]))
        room = max(len(todo), self.model.settings.n_ubatch)
        rows: dict[int, int] = {}
        n = 0
        for seq, new in todo:
            part = new[: max(0, room - n)]
            for i, token in enumerate(part):
                last = i == len(new) - 1
                self._batch.put(n, token, len(self.cached[seq]), seq, last)
                self.cached[seq].append(token)
                if last:
                    rows[seq] = n
                n += 1
        self.caught_up = n
        if n:
            self.passes += 1
            if self._batch.decode(m.ctx, n) != 0:
                self._forget([s for s, _ in todo])
                return {}
        return rows

    def _top(self, index: int, ban_eog: bool) -> tuple[int, float]:
        """The draft's most likely token at batch output `index` (never an end token with
        `ban_eog`, as the request's own sampler bans them), and its probability; -1
        when none of the graph's candidates may be guessed."""
        ctx = self.model.ctx
        if self._chains:
            n = llama_cpp.llama_get_sampled_candidates_count_ith(ctx, index)
            ids = llama_cpp.llama_get_sampled_candidates_ith(ctx, index)
            logits = llama_cpp.llama_get_sampled_logits_ith(ctx, index)
            if not (n and ids and logits):
                return -1, 0.0
            return top_of(ids[:n], logits[:n], self.model.eog if ban_eog else ())
        import numpy as np

        row = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx, index), shape=(self.model.n_vocab,)
        )
        if ban_eog:
            row = row.copy()
            row[list(self.model.eog)] = -np.inf
        token = int(row.argmax())
        if self._scratch is None or self._scratch.shape != row.shape:
            self._scratch = np.empty_like(row)
        np.subtract(row, row[token], out=self._scratch)  # in place: a third less time for
        np.exp(self._scratch, out=self._scratch)  # 128k logits than with new arrays
        return token, float(1.0 / self._scratch.sum())

    def _forget(self, seqs: Sequence[int]) -> None:
        """A failed decode leaves these sequences' caches unknown: empty them."""
        for seq in seqs:
            llama_cpp.llama_memory_seq_rm(self.model.memory, seq, -1, -1)
            self.cached[seq] = []

    def _free_chains(self) -> None:
        for chain in self._chains:
            llama_cpp.llama_sampler_free(chain)
        self._chains = []

    def close(self) -> None:
        self._batch.close()
        self.model.close()  # the context first: it refers to the chains
        self._free_chains()


def top_of(ids: Sequence[int], logits: Sequence[float], banned: Iterable[int]) -> tuple[int, float]:
    """The most likely of the candidates `ids` (with their `logits`) that is not
    `banned`, and its probability among those candidates; (-1, 0.0) when none is left."""
    out = set(banned)
    kept = [(logit, token) for token, logit in zip(ids, logits, strict=True) if token not in out]
    if not kept:
        return -1, 0.0
    best, token = max(kept)
    return token, 1.0 / sum(math.exp(logit - best) for logit, _ in kept)
