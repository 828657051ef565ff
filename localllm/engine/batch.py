"""Continuous batching: every running request of a model advances in one `llama_decode`.

The context holds `n_seq_max` slots, each a llama.cpp sequence with its own
part of the KV cache (`n_ctx / n_seq_max` tokens, the context a request
sees). A request takes a free slot or waits in arrival order; once in, it
advances every step, so no admitted stream starves. Each step puts, in one
`llama_batch`, the last sampled token of every generating request and then
as much of the waiting prompts as the batch holds (a smaller chunk while
others generate, so their tokens keep flowing); the samplers then read each
request's logits in place. Python touches one token per request per step.

A slot keeps its tokens after a request ends: a request whose prompt starts
with them (the next turn of a chat, the same system prompt) takes that slot
and decodes only what is new. Models whose cache cannot be cut back
(recurrent state, sliding-window layers) reuse a slot only when the new
prompt extends it exactly.
"""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import llama_cpp

from localllm.engine import image_slots, slots
from localllm.engine.draft import Ask, DraftModel
from localllm.engine.embedding import embed
from localllm.engine.graph_sampling import GraphSamplers
from localllm.engine.greedy import GreedyRows, greedy_rows, plain_greedy
from localllm.engine.job import Job
from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.prompt import prompt_text
from localllm.engine.protocol import (
    Embed,
    Event,
    Failed,
    Generate,
    Render,
    Rendered,
)
from localllm.engine.rejection import RejectionSampler
from localllm.engine.sampling import GuardedDraw, build_sampler, token_logprob
from localllm.engine.slots import Slot
from localllm.engine.speculation import (
    DRAFT_GUESSES_PER_STEP,
    DRAFT_UP_TO,
    GUESSES_PER_STEP,
    K_MAX,
    SPECULATE_UP_TO,
    Pace,
    Payoff,
    PromptLookup,
    speculates,
)
from localllm.engine.tokenbatch import TokenBatch
from localllm.errors import LocalLLMError

if TYPE_CHECKING:
    from localllm.engine.vision import Projector, Tokenized

GRAPH_GREEDY_UP_TO = 4
"""Streams up to which a greedy request is sampled in llama.cpp's graph (when it
samples there): beyond, each stream's own argmax subgraph costs the decode more
than reading all greedy rows off the host logits at once (`engine.greedy`)."""


class Engine:
    def __init__(
        self,
        model: LlamaModel,
        profile: StepProfile | None = None,
        draft: DraftModel | None = None,
        payoff: Payoff | None = None,
        projector: Projector | None = None,
    ) -> None:
        self.model = model
        self.projector = projector
        """The model's vision projector (`engine.vision`), when it reads images."""
        self.draft = draft
        """The draft model that guesses for requests that speculate (else prompt lookup)."""
        self.payoff = payoff or Payoff()
        """Whether guessing pays at this many streams, measured (`engine.speculation`)."""
        self.profile = profile
        """Where the time goes (`engine.profile`), when the worker was asked to measure."""
        n_seq = max(1, model.settings.n_seq_max)
        self.slots = [Slot(seq) for seq in range(n_seq)]
        self.n_ctx_slot = model.n_ctx_seq
        self.queue: deque[Generate | Embed] = deque()
        self._capacity = max(model.settings.n_batch, n_seq)
        self._batch = TokenBatch(self._capacity)
        self._can_cut = not (model.recurrent or (model.has_swa and not model.settings.swa_full))
        self._guarded: GuardedDraw | None = None
        self._graph = GraphSamplers(model, n_seq)
        self._new_prompt = False
        """The draft model caught up with a whole prompt this step (`_drafts`)."""

    @property
    def busy(self) -> bool:
        return bool(self.queue) or any(s.job is not None for s in self.slots)

    def submit(self, request: Generate | Embed) -> None:
        self.queue.append(request)

    def cancel(self, request_id: int) -> Failed | None:
        """Stop a request: it ends with a 499 at once; None when it is not here."""
        for slot in self.slots:
            if slot.job is not None and slot.job.id == request_id:
                self._release(slot)
                return Failed(request_id, 499, "cancelled")
        if any(r.id == request_id for r in self.queue):
            self.queue = deque(r for r in self.queue if r.id != request_id)
            return Failed(request_id, 499, "cancelled")
        return None

    def step(self) -> list[Event]:
        """Admit what fits, then one decode of every running request."""
        start = time.perf_counter_ns()
        events = self._admit()
        if self.profile is not None:
            self.profile.add("admit", time.perf_counter_ns() - start)
        running = [s for s in self.slots if s.job is not None]
        if running:
            events += self._decode(running)
        return events

    # --- admission ------------------------------------------------------------------

    def _admit(self) -> list[Event]:
        events: list[Event] = []
        while self.queue:
            free = [s for s in self.slots if s.job is None]
            if not free:
                break
            request = self.queue.popleft()
            if isinstance(request, Embed):
                slot = min(free, key=lambda s: s.last_used)
                limit = min(self.model.settings.n_ubatch, self.n_ctx_slot)
                slots.forget(slot, None)  # embedding clears the sequence itself
                try:
                    events.append(embed(self.model, self._batch, request, slot.seq, limit))
                except Exception as exc:
                    events.append(Failed(request.id, 500, f"embedding failed: {_describe(exc)}"))
                slot.last_used = time.monotonic()
                continue
            start = time.perf_counter_ns()
            vision: Tokenized | None = None
            try:
                m, n_ctx = self.model, self.n_ctx_slot
                tokens, vision = image_slots.prompt(m, self.projector, request, n_ctx)
                if not tokens:
                    raise LocalLLMError("the prompt is empty: there is nothing to continue")
                eog = m.eog if request.sampling.ignore_eos else ()
                build = functools.partial(
                    build_sampler, m.vocab, m.n_vocab, request.sampling, request.grammar, eog
                )
                slot = slots.choose(free, tokens)
                k_max = self._k_max(request)
                rejection = None
                if plain_greedy(request) and not self._graph_greedy():
                    self._graph.detach(slot.seq)
                    sampler, owned = None, False
                elif k_max and not plain_greedy(request):  # its draws follow each guess
                    self._graph.detach(slot.seq)
                    if request.sampling.temperature > 0:
                        seed = request.sampling.seed
                        chain = build(with_draw=False)
                        rejection = RejectionSampler(chain, m.n_vocab, seed)
                        sampler, owned = None, False
                    else:
                        sampler, owned = build(), True
                else:
                    sampler, owned = self._graph.chain_for(slot.seq, request, build)
            except (LocalLLMError, ValueError) as exc:
                events.append(Failed(request.id, 400, str(exc), getattr(exc, "overflow", ())))
                if vision is not None:
                    vision.close()
                continue
            except Exception as exc:  # this request's failure (a template, a tokenizer...)
                events.append(Failed(request.id, 500, f"the request failed: {_describe(exc)}"))
                if vision is not None:
                    vision.close()
                continue
            cached = slots.reuse(slot, tokens, self.model.memory, self._can_cut)
            job = slot.job = Job(self.model, request, tokens, cached, sampler, start, owned)
            job.rejection = rejection
            if vision is not None and self.projector is not None:
                job.vision = vision
                for begin, part in vision.parts.items():
                    if begin >= cached:  # not in the slot's cache: encode it meanwhile
                        self.projector.encode(part)
            if k_max and self.draft is not None:
                job.pace = Pace(k_max)
            elif k_max:
                job.lookup = PromptLookup(tokens, k_max)
                job.pace = job.lookup.pace
        return events

    def _k_max(self, request: Generate) -> int:
        """The most tokens `request` guesses per pass; 0 when it does not speculate: a
        cache that cannot be cut back, a grammar or logprobs, asked not to, or sampled
        with only prompt lookup to guess (a lookup's guesses rarely survive a draw)."""
        s = request.sampling
        if not self._can_cut or not speculates(request) or s.draft_max == 0 or request.images:
            return 0
        if self.draft is None and (not s.prompt_lookup or s.temperature > 0):
            return 0
        return K_MAX if s.draft_max < 0 else min(s.draft_max, K_MAX)

    def _graph_greedy(self) -> bool:
        """Whether a greedy request admitted now is sampled in the graph, else read off
        the host logits with the step's other greedy rows (`engine.greedy`)."""
        streams = len(self.queue) + sum(s.job is not None for s in self.slots) + 1
        return self._graph.enabled and streams <= GRAPH_GREEDY_UP_TO

    # --- one step -------------------------------------------------------------------

    def _decode(self, running: list[Slot]) -> list[Event]:
        built_from = time.perf_counter_ns()
        batch = self._batch
        n = 0
        outputs: list[tuple[Slot, int]] = []
        events: list[Event] = []
        if self.projector is not None:
            events += self._images(running)
            running = [s for s in running if s.job is not None]
        generating = [s for s in running if s.job and not s.job.prefilling]
        for slot in generating:
            if slot.job and self._limit(slot.job) == 0 and len(slot.cached) + 1 >= self.n_ctx_slot:
                slots.shift(slot, self.model.memory, self.model.add_bos)
        jobs = [s.job for s in generating if s.job is not None]
        speculating = any(j.pace is not None for j in jobs)
        guessed = speculating and self.payoff.guess(len(jobs))
        drafts = self._drafts(generating) if guessed else {}
        emitted_before = sum(j.n_eval for j in jobs)
        for slot in generating:  # one token each (and its guesses): streams first
            assert slot.job is not None
            pos = slot.pos
            self._batch.put(n, slot.job.pending[0], pos, slot.seq, True)
            outputs.append((slot, n))
            n += 1
            for j, token in enumerate(drafts.get(slot.seq, ())):
                self._batch.put(n, token, pos + 1 + j, slot.seq, True)
                n += 1
        chunk = self.model.settings.n_ubatch if generating else self._capacity
        taken: dict[int, int] = {}
        for slot in running:
            job = slot.job
            if job is None or not job.prefilling or n >= self._capacity:
                continue
            take = min(len(job.pending), chunk, self._capacity - n)
            if job.vision is not None:  # text up to the next image (`_images` puts it in)
                image = job.vision.next_image(len(slot.cached))
                take = min(take, image - len(slot.cached)) if image is not None else take
            pos = slot.pos
            for i in range(take):
                last = take == len(job.pending) and i == take - 1
                self._batch.put(n, job.pending[i], pos + i, slot.seq, last)
                if last:
                    outputs.append((slot, n))
                n += 1
            taken[slot.seq] = take
        if n == 0:  # only prompts whose next image is still being encoded
            image_slots.await_encoding(running)
            return events
        profile = self.profile
        if profile is not None:
            built = time.perf_counter_ns()
            profile.add("batch", built - built_from)
        code = batch.decode(self.model.ctx, n)
        if code != 0:
            return events + self._fail(running, f"llama_decode failed with code {code}")
        if profile is not None:
            llama_cpp.llama_synchronize(self.model.ctx)  # so the device's compute counts here
            decoded = time.perf_counter_ns()
            profile.add("decode", decoded - built)
            profile.steps += 1
            sample_ns = 0
        picked = self._greedy.tokens(self.model.ctx, greedy_rows(outputs, drafts))
        if profile is not None:
            sample_ns += time.perf_counter_ns() - decoded
        for slot in running:
            job = slot.job
            assert job is not None
            if job.prefilling:
                take = taken.get(slot.seq, 0)
                slot.cached += job.pending[:take]
                del job.pending[:take]
            else:
                slot.cached.append(job.pending[0])
        take_picked = functools.partial(_picked, picked)
        for slot, index in outputs:
            job = slot.job
            assert job is not None
            job.passes += 1
            try:
                if job.rejection is not None:
                    draw: Any = functools.partial(_drawn, job.rejection)
                elif job.sampler is None:
                    draw = take_picked
                elif job.request.grammar:
                    draw = self._guarded_draw()
                else:
                    draw = _sample
                if profile is not None:
                    drawn_from = time.perf_counter_ns()
                    ctx = self.model.ctx
                    profile.backend += llama_cpp.llama_get_sampled_token_ith(ctx, index) >= 0
                token = draw(job.sampler, self.model.ctx, index)
                if profile is not None:
                    sample_ns += time.perf_counter_ns() - drawn_from
                    profile.tokens += 1
                top = job.request.sampling.logprobs
                if top >= 0 and not self.model.is_eog(token):
                    m = self.model
                    job.logprob(token_logprob(m.ctx, index, m.n_vocab, token, top, m.piece))
                out = job.accept(token, len(slot.cached), self._limit(job))
                if job.lookup is not None:
                    job.lookup.push(token)
                if slot.seq in drafts:
                    out += self._verify(slot, job, token, drafts[slot.seq], index, draw)
            except LocalLLMError as exc:
                out = [Failed(job.id, 400, str(exc))]
                job.pending = []
            except Exception as exc:  # a failure of this request, not the worker's
                out = [Failed(job.id, 500, f"generation failed: {_describe(exc)}")]
                job.pending = []
            events += out
            if not job.pending:
                self._release(slot)
        if speculating and not taken and not (guessed and self._new_prompt):  # comparable
            emitted = sum(j.n_eval for j in jobs) - emitted_before
            seconds = (time.perf_counter_ns() - built_from) / 1e9
            self.payoff.record(len(jobs), guessed, emitted, seconds)
        if profile is not None:
            profile.add("sample", sample_ns)
            profile.add("accept", time.perf_counter_ns() - decoded - sample_ns)
        return events

    @functools.cached_property
    def _greedy(self) -> GreedyRows:
        m = self.model
        return GreedyRows(m.n_vocab, m.eog, min(8, os.cpu_count() or 1))

    def _drafts(self, generating: list[Slot]) -> dict[int, list[int]]:
        """{sequence: its guesses} for the streams that speculate this step: prompt
        lookup's at once, the draft model's in its own batched decodes."""
        self._new_prompt = False
        up_to = SPECULATE_UP_TO if self.draft is None else DRAFT_UP_TO
        if not generating or len(generating) > up_to:
            return {}
        per_step = GUESSES_PER_STEP if self.draft is None else DRAFT_GUESSES_PER_STEP
        share = min(self._capacity - len(generating), per_step) // len(generating)
        drafts: dict[int, list[int]] = {}
        asks: list[Ask] = []
        for slot in generating:
            job = slot.job
            assert job is not None
            room = min(share, self.n_ctx_slot - len(slot.cached) - 2)
            if job.pace is None or room <= 0:
                continue
            if job.lookup is not None:
                guesses = job.lookup.draft(room)
                if guesses:
                    drafts[slot.seq] = guesses
            elif k := job.pace.length(room):
                text = [*slot.cached, job.pending[0]]
                asks.append(Ask(slot.seq, text, k, job.request.sampling.ignore_eos))
        if asks and self.draft is not None:
            start = time.perf_counter_ns()
            drafts.update(self.draft.propose(asks))
            self._new_prompt = self.draft.caught_up > (K_MAX + 1) * len(asks)
            if self.profile is not None:
                self.profile.add("draft", time.perf_counter_ns() - start)
        return drafts

    def _verify(
        self, slot: Slot, job: Job, token: int, draft: list[int], index: int, draw: Any
    ) -> list[Event]:
        """Keep the guesses the model agrees with: while the token it chose is the next
        guess, that guess's logits (the outputs after `index`) give the token after it.
        The cache keeps the agreed guesses and drops the rest."""
        events: list[Event] = []
        agreed = 0
        while job.pending and agreed < len(draft) and token == draft[agreed]:
            slot.cached.append(draft[agreed])
            agreed += 1
            token = draw(job.sampler, self.model.ctx, index + agreed)
            events += job.accept(token, len(slot.cached), self._limit(job))
            if job.lookup is not None:
                job.lookup.push(token)
        llama_cpp.llama_memory_seq_rm(self.model.memory, slot.seq, len(slot.cached), -1)
        assert job.pace is not None
        job.pace.update(len(draft), agreed)
        if self.profile is not None:
            self.profile.tokens += agreed
            self.profile.drafted += len(draft)
            self.profile.agreed += agreed
        return events

    def _limit(self, job: Job) -> int:
        """The context `job.accept` ends the answer at (0: none, the engine shifts)."""
        shifts = job.request.shift and job.vision is None  # never through an image
        return 0 if shifts and self.can_shift else self.n_ctx_slot

    @functools.cached_property
    def can_shift(self) -> bool:
        return self._can_cut and bool(llama_cpp.llama_memory_can_shift(self.model.memory))

    def _images(self, running: list[Slot]) -> list[Event]:
        """Put in the images prompts have reached; a prompt whose image fails ends."""
        assert self.projector is not None
        events: list[Event] = []
        for slot in running:
            if slot.job is None or slot.job.vision is None or not slot.job.prefilling:
                continue
            try:
                image_slots.feed(self.projector, slot, self._capacity, self.profile)
            except Exception as exc:
                status = 400 if isinstance(exc, LocalLLMError) else 500
                events += [Failed(slot.job.id, status, f"the image failed: {_describe(exc)}")]
                self._release(slot)
                slots.forget(slot, self.model.memory)
        return events

    def _guarded_draw(self) -> GuardedDraw:
        if self._guarded is None:
            self._guarded = GuardedDraw(self.model.n_vocab)
        return self._guarded

    def _fail(self, running: list[Slot], message: str) -> list[Event]:
        """A failed decode leaves the cache of its sequences unknown: drop them."""
        events: list[Event] = []
        for slot in running:
            assert slot.job is not None
            events.append(Failed(slot.job.id, 500, message))
            self._release(slot)
            slots.forget(slot, self.model.memory)
        return events

    def _release(self, slot: Slot) -> None:
        if slot.job is not None:
            slot.job.close()
            slot.job = None
        slot.last_used = time.monotonic()

    def render(self, message: Render) -> Rendered | Failed:
        """The prompt text of a request, and its token count, without running it."""
        try:
            text = prompt_text(self.model, message.request)
            m, request = self.model, message.request  # each image counts as its tokens
            tokens, vision = image_slots.prompt(m, self.projector, request, 1 << 30)
            if vision is not None:
                vision.close()
        except (LocalLLMError, ValueError) as exc:
            return Failed(message.id, 400, str(exc), getattr(exc, "overflow", ()))
        except Exception as exc:
            return Failed(message.id, 500, f"the template failed: {_describe(exc)}")
        return Rendered(message.id, text, len(tokens))

    def fail_all(self, message: str) -> list[Event]:
        """End every running and waiting request with `message`: the last resort when a
        step itself failed, after which the slots start empty and the worker goes on."""
        events: list[Event] = [Failed(r.id, 500, message) for r in self.queue]
        self.queue.clear()
        running = [s for s in self.slots if s.job is not None]
        return events + self._fail(running, message)

    def close(self) -> None:
        for slot in self.slots:
            self._release(slot)
        self._graph.close()
        if "_greedy" in self.__dict__:
            self._greedy.close()
        self._batch.close()
        if self.draft is not None:
            self.draft.close()
        if self.projector is not None:
            self.projector.close()


def _picked(picked: dict[int, int], _sampler: object, _ctx: object, index: int) -> int:
    return picked[index]


def _drawn(draw: RejectionSampler, _sampler: object, ctx: object, index: int) -> int:
    return draw(ctx, index)


def _sample(sampler: object, ctx: object, index: int) -> int:
    return int(llama_cpp.llama_sampler_sample(sampler, ctx, index))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
