"""Continuous batching: every running request of a model advances in one `llama_decode`.

The context holds `n_seq_max` slots, each a llama.cpp sequence with its own part of the
KV cache (`n_ctx / n_seq_max` tokens, the context a request sees). A request takes a
free slot or waits in arrival order; once in, it advances every step, so no admitted
stream starves. Each step puts, in one `llama_batch`, the last sampled token of every
generating request and then as much of the waiting prompts as the batch holds (a smaller
chunk while others generate, so their tokens keep flowing); the samplers then read each
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
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import llama_cpp

from localllm.engine import draws, graph_argmax, guesses, image_slots, slots, speculation
from localllm.engine.ahead import Launched, launch, steady
from localllm.engine.chunking import ChunkSize, tile
from localllm.engine.draft import DraftModel
from localllm.engine.embedding import embed, rank
from localllm.engine.graph_sampling import GraphSamplers
from localllm.engine.greedy import GreedyRows, graph_rows, greedy_rows, plain_greedy
from localllm.engine.job import Job
from localllm.engine.lora import LoraTurns, lora_of
from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.prompt import Prepared
from localllm.engine.protocol import Done, Embed, Event, Failed, Generate, Rank
from localllm.engine.rejection import RejectionSampler
from localllm.engine.sampling import GuardedDraw, build_sampler, token_logprob
from localllm.engine.slots import Slot
from localllm.engine.speculation import Guessing, Payoff, pace_for
from localllm.engine.tokenbatch import TokenBatch
from localllm.errors import LocalLLMError, describe

if TYPE_CHECKING:
    from localllm.engine.prompt_cache import PromptCache
    from localllm.engine.vision import Projector, Tokenized


class Engine:
    def __init__(
        self,
        model: LlamaModel,
        profile: StepProfile | None = None,
        draft: DraftModel | None = None,
        payoff: Payoff | None = None,
        projector: Projector | None = None,
        overlap: bool | None = None,
        prompt_cache: PromptCache | None = None,
    ) -> None:
        self.model = model
        gpu = model.settings.n_gpu_layers > 0 and bool(llama_cpp.llama_supports_gpu_offload())
        self.overlap = gpu if overlap is None else overlap
        """Whether a step's text is worked out while the device computes the next
        (`_decode`): on a GPU, where `llama_decode` returns before the work is done."""
        self.ahead = True
        """Whether a steady overlapped step launches the next decode first (`engine.ahead`)."""
        self.projector = projector
        """The model's vision projector (`engine.vision`), when it reads images."""
        self.draft = draft
        """The draft model that guesses for requests that speculate (else prompt lookup)."""
        self.payoff = payoff or Payoff()
        """Whether guessing pays at this many streams, measured (`engine.speculation`)."""
        self._guess = Guessing(draft is not None, self.overlap)  # how streams guess
        self.profile = profile
        """Where the time goes (`engine.profile`), when the worker was asked to measure."""
        self.sink: Callable[[list[Event]], None] | None = None
        """Where the worker sends events (its socket): an overlapped step hands it the text
        of last step's tokens while the device computes."""
        n_seq = max(1, model.settings.n_seq_max)
        self.slots = [Slot(seq) for seq in range(n_seq)]
        self.n_ctx_slot = model.n_ctx_seq
        self.queue: deque[Generate | Embed | Rank | Prepared] = deque()
        self._capacity = max(model.settings.n_batch, n_seq)
        self._batch = TokenBatch(self._capacity)
        self._can_cut = not (model.recurrent or (model.has_swa and not model.settings.swa_full))
        self._guarded = GuardedDraw(model.n_vocab)
        self._graph = GraphSamplers(model, n_seq)
        self._new_prompt = False  # the draft caught up with a whole prompt this step
        self._ahead: Launched | None = None  # the next decode, launched early (`ahead`)
        self._lora = LoraTurns(model)
        cut = tile(model.settings, model.n_layer, gpu)  # some attention on the CPU: 64
        self._chunk = ChunkSize(self._capacity, model.settings.n_ubatch, cut)
        self.prompt_cache = prompt_cache
        """Prefixes saved by earlier workers of this model (`engine.prompt_cache`)."""

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self._ahead is not None or any(s.job for s in self.slots)

    def submit(self, request: Generate | Embed | Rank | Prepared) -> None:
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
        """Admit what fits, then decode every running request (or finish that launched ahead)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return self._with_kv_used(self._finish(ahead, []))
        start, changes = time.perf_counter_ns(), self._graph.changes
        events = self._admit()
        if self.profile is not None:
            self.profile.add("admit", time.perf_counter_ns() - start)
            self.profile.replans = self._graph.changes - changes
        running = [s for s in self.slots if s.job is not None]
        if running:
            launched = self._launch(running, events)
            if launched is not None:
                events = self._finish(launched, events)
        return self._with_kv_used(events)

    def _with_kv_used(self, events: list[Event]) -> list[Event]:
        if any(isinstance(e, Done) for e in events):  # how full the cache is, as it ends
            used = sum(len(s.cached) for s in self.slots)
            events = [replace(e, kv_used=used) if isinstance(e, Done) else e for e in events]
        return events

    # --- admission ------------------------------------------------------------------

    def _admit(self) -> list[Event]:
        events: list[Event] = []
        while self.queue:
            free = [s for s in self.slots if s.job is None]
            if not free:
                break
            request = self.queue.popleft()
            if isinstance(request, Embed | Rank):
                slot = min(free, key=lambda s: s.last_used)
                limit = min(self.model.settings.n_ubatch, self.n_ctx_slot)
                slots.forget(slot, None)  # embedding clears the sequence itself
                try:
                    if isinstance(request, Embed):
                        events.append(embed(self.model, self._batch, request, slot.seq, limit))
                    else:
                        events.append(rank(self.model, self._batch, request, slot.seq, limit))
                except Exception as exc:
                    events.append(Failed(request.id, 500, f"embedding failed: {describe(exc)}"))
                slot.last_used = time.monotonic()
                continue
            start = time.perf_counter_ns()
            vision: Tokenized | None = None
            try:
                m, n_ctx = self.model, self.n_ctx_slot
                if isinstance(request, Prepared):  # tokenized off this loop (`inbox`)
                    prepared, request = request, request.request
                    tokens = prepared.tokens
                    if prepared.error is not None:
                        raise prepared.error
                else:
                    tokens, vision = image_slots.prompt(m, self.projector, request, n_ctx)
                if not tokens:
                    raise LocalLLMError("the prompt is empty: there is nothing to continue")
                eog = m.eog if request.sampling.ignore_eos else ()
                build = functools.partial(
                    build_sampler, m.vocab, m.n_vocab, request.sampling, request.grammar, eog
                )
                lora = lora_of(request, m)
                running = {s.seq for s in self.slots if s.job is not None}
                slot = slots.choose(free, tokens, running)
                k_max = speculation.k_max(request, self._can_cut, self.draft is not None)
                rejection = None
                quiet = not running  # nobody to hold up
                if quiet:
                    self._graph.home_others(slot.seq)
                if plain_greedy(request):
                    sampler, owned = self._graph.greedy(slot.seq, request, quiet), False
                elif k_max:  # its draws follow each guess
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
                events.append(Failed(request.id, 500, f"the request failed: {describe(exc)}"))
                if vision is not None:
                    vision.close()
                continue
            if slot.lora != lora:  # its cache was computed under other adapters
                slots.forget(slot, self.model.memory)
                slot.lora = lora
            if self.prompt_cache is not None and vision is None and lora == m.default_lora:
                self.prompt_cache.restore(m, slot, tokens)  # when the slot shares too little
            cached = slots.reuse(slot, tokens, self.model.memory, self._can_cut)
            job = slot.job = Job(self.model, request, tokens, cached, sampler, start, owned)
            job.graph_greedy = (
                self._graph.argmax_rows and sampler is not None and plain_greedy(request)
            )
            job.rejection, job.lora = rejection, lora
            if vision is not None and self.projector is not None:
                job.vision = vision
                for begin, part in vision.parts.items():
                    if begin >= cached:  # not in the slot's cache: encode it meanwhile
                        self.projector.encode(part)
            if k_max:
                job.pace, job.lookup = pace_for(request, tokens, k_max, self._guess)
        return events

    # --- one step -------------------------------------------------------------------

    def _launch(self, running: list[Slot], events: list[Event]) -> Launched | None:
        """Queue one `llama_decode` of every running request: each generating stream's last
        token (and guesses), then prompt chunks (None: nothing to decode, or failed)."""
        built_from = time.perf_counter_ns()
        batch = self._batch
        n = 0
        outputs: list[tuple[Slot, int]] = []
        if self.projector is not None:
            events += image_slots.feed_all(self.projector, running, self._capacity, self.profile,
                                           self._drop)  # fmt: skip
            running = [s for s in running if s.job is not None]
        everyone, running = running, self._lora.pick(running)  # one set of adapters a decode
        generating = [s for s in running if s.job and not s.job.prefilling and s.job.pending]
        for slot in generating:
            if slot.job and self._limit(slot.job) == 0 and len(slot.cached) + 1 >= self.n_ctx_slot:
                slots.shift(slot, self.model.memory, self.model.add_bos)
        jobs = [s.job for s in generating if s.job is not None]
        speculating = any(j.pace is not None for j in jobs)
        tiles = self._chunk.tile > 1 and any(s.job.prefilling for s in running if s.job)
        guessed = speculating and not tiles and self.payoff.guess(len(jobs))  # `ChunkSize.take`
        drafts: dict[int, list[int]] = {}
        self._new_prompt = False
        own: dict[int, int] = {}  # padded streams' own guesses (`guesses.pad`)
        if guessed:
            drafts, self._new_prompt = guesses.propose(
                generating, self.draft, self._guess, self._capacity, self.n_ctx_slot, self.profile
            )
            if self.overlap:  # a GPU: one pass for equal lengths beats a pass per length
                own = guesses.pad(generating, drafts, self.n_ctx_slot)
        emitted_before = sum(j.n_eval for j in jobs)
        fed: list[tuple[Slot, int]] = []
        for slot in generating:  # one token each (and its guesses): streams first
            assert slot.job is not None
            pos = slot.pos
            fed.append((slot, slot.job.pending[0]))
            self._batch.put(n, slot.job.pending[0], pos, slot.seq, True)
            outputs.append((slot, n))
            n += 1
            for j, token in enumerate(drafts.get(slot.seq, ())):
                self._batch.put(n, token, pos + 1 + j, slot.seq, True)
                n += 1
        gen = bool(generating)
        chunk = self._chunk.share(n) if gen else self._capacity
        taken: dict[int, int] = {}
        for slot in running:
            job = slot.job
            if job is None or not job.prefilling or n >= self._capacity:
                continue
            if not (take := self._chunk.take(chunk, self._capacity - n, len(job.pending), gen)):
                continue  # its turn comes in a later step
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
            chunk -= take
        if n == 0:  # only texts to finish, or prompts whose next image is being encoded
            events += self._flush(everyone)
            image_slots.await_encoding([s for s in running if s.job is not None])
            return None
        if self.profile is not None:
            built = time.perf_counter_ns()
            self.profile.add("batch", built - built_from)
            self.profile.rows, self.profile.prompt_rows = n, sum(taken.values())
        code = batch.decode(self.model.ctx, n)
        launched = time.perf_counter_ns()  # a CPU's decode is done here, a GPU's queued
        if self.profile is not None:
            self.profile.add("decode", launched - built)
        if code != 0:
            events += self._flush(everyone)
            events += self._fail(self._live(running), f"llama_decode failed with {code}")
            return None
        return Launched(everyone, running, generating, fed, outputs, built_from, launched,
                        taken, drafts, own, jobs, speculating, guessed, emitted_before)  # fmt: skip

    def _finish(self, step: Launched, events: list[Event]) -> list[Event]:
        """Read each stream's next token from the decode `step` launched, and take it.

        On a GPU, `llama_decode` returns once the work is queued: the text of the
        tokens sampled last step (`Job.flush`: pieces, stop sequences, events) is
        worked out while the device computes, so the step's Python hides behind it.
        A stream its text ended meanwhile had one token too many decoded: its row is
        not sampled (the cache keeps the token, and the slot's record says so)."""
        everyone, running, fed, outputs = step.everyone, step.running, step.fed, step.outputs
        drafts, taken, profile = step.drafts, step.taken, self.profile
        began = time.perf_counter_ns()  # (launched ahead: the step before counted till now)
        events += self._flush(everyone)  # while the device computes
        if self.sink is not None and events:  # and on its way to the server meanwhile
            self.sink(self._with_kv_used(events))
            events = []
        running = self._live(running)
        if profile is not None:
            flushed = time.perf_counter_ns()
            profile.add("accept", flushed - began)
            llama_cpp.llama_synchronize(self.model.ctx)  # so the device's compute counts here
            decoded = time.perf_counter_ns()
            profile.add("decode", decoded - flushed)
            profile.steps += 1
            sample_ns = 0
        picked = self._greedy.tokens(self.model.ctx, greedy_rows(outputs, drafts))
        if self._graph.argmax_rows:
            in_graph = graph_rows(outputs, drafts)
            picked.update(graph_argmax.tokens(self.model.ctx, self.model.n_vocab, in_graph))
        if profile is not None:
            sample_ns += time.perf_counter_ns() - decoded
        for slot, token in fed:  # in the cache, also where the answer just ended
            slot.cached.append(token)
        ahead = self.overlap and self.ahead and self._go_ahead(step, picked)
        for slot in running:
            job = slot.job
            assert job is not None
            if job.prefilling and (take := taken.get(slot.seq, 0)):
                slot.cached += job.pending[:take]
                del job.pending[:take]
        take_picked = functools.partial(draws.picked, picked)
        for slot, index in outputs:
            job = slot.job
            if job is None:
                continue  # its text ended while the device computed its row
            job.passes += 1
            try:
                if job.rejection is not None:
                    draw: Any = functools.partial(draws.drawn, job.rejection)
                elif job.sampler is None or job.graph_greedy:
                    draw = take_picked
                elif job.request.grammar:
                    draw = self._guarded
                else:
                    draw = draws.sample
                if profile is not None:
                    drawn_from = time.perf_counter_ns()
                    ctx = self.model.ctx  # (the next decode runs ahead: nothing to ask)
                    sampled = not ahead and llama_cpp.llama_get_sampled_token_ith(ctx, index) >= 0
                    profile.backend += job.graph_greedy or sampled
                token = draw(job.sampler, self.model.ctx, index)
                if profile is not None:
                    sample_ns += time.perf_counter_ns() - drawn_from
                    profile.tokens += 1
                top = job.request.sampling.logprobs
                if top >= 0 and not self.model.is_eog(token):
                    m = self.model
                    job.logprob(token_logprob(m.ctx, index, m.n_vocab, token, top, m.piece))
                job.take(token, len(slot.cached), self._limit(job))
                if job.lookup is not None:
                    job.lookup.push(token)
                if slot.seq in drafts:
                    mine = step.own.get(slot.seq, len(drafts[slot.seq]))
                    guesses.verify(self.model, slot, drafts[slot.seq], (index, token, mine),
                                   draw, self._limit(job), profile)  # fmt: skip
                if not self.overlap:  # the decode blocked: no reason to wait a step
                    events += job.flush()
            except LocalLLMError as exc:
                events.append(Failed(job.id, 400, str(exc)))
                self._release(slot)
            except Exception as exc:  # a failure of this request, not the worker's
                events.append(Failed(job.id, 500, f"generation failed: {describe(exc)}"))
                self._release(slot)
            else:
                if job.finished:
                    self._release(slot)
        seconds = (time.perf_counter_ns() - step.built_from) / 1e9
        if step.generating or taken:  # how long it took: size the next prompt chunk
            self._chunk.update(sum(taken.values()), seconds, bool(step.generating))
        if step.speculating and (taken or (step.guessed and self._new_prompt)):
            self.payoff.interrupt()  # a step unlike either way
        elif step.speculating:
            emitted = sum(j.n_eval for j in step.jobs) - step.emitted_before
            self.payoff.record(len(step.jobs), step.guessed, emitted, seconds)
        if profile is not None:  # (a launch ahead counted its own time: `ahead.launch`)
            launch_ns = self._ahead.launched_ns - self._ahead.built_from if self._ahead else 0
            profile.add("sample", sample_ns)
            profile.add("accept", time.perf_counter_ns() - decoded - sample_ns - launch_ns)
        return events

    def _go_ahead(self, done: Launched, picked: dict[int, int]) -> bool:
        """Launch the next decode now, where it is `done`'s batch with the tokens just
        `picked` (`engine.ahead`); whether it did."""
        if steady(done, picked, self.n_ctx_slot, self._guess.up_to, bool(self.queue)):
            self._ahead = launch(self._batch, self.model.ctx, done, picked, self.profile)
        return self._ahead is not None

    def _flush(self, running: list[Slot]) -> list[Event]:
        """The text and ends of the tokens taken last step (`Job.flush`); a job whose
        answer ended leaves its slot."""
        events: list[Event] = []
        for slot in running:
            job = slot.job
            if job is not None and not job.prefilling:
                events += job.flush()
                if job.finished:
                    self._release(slot)
        return events

    @staticmethod
    def _live(running: list[Slot]) -> list[Slot]:
        return [s for s in running if s.job is not None]

    @functools.cached_property
    def _greedy(self) -> GreedyRows:
        m = self.model
        return GreedyRows(m.n_vocab, m.eog, min(8, os.cpu_count() or 1))

    def _limit(self, job: Job) -> int:
        """The context `job.accept` ends the answer at (0: none, the engine shifts)."""
        shifts = job.request.shift and job.vision is None  # never through an image
        return 0 if shifts and self.can_shift else self.n_ctx_slot

    @functools.cached_property
    def can_shift(self) -> bool:
        return self._can_cut and bool(llama_cpp.llama_memory_can_shift(self.model.memory))

    def _fail(self, running: list[Slot], message: str) -> list[Event]:
        """A failed decode leaves the cache of its sequences unknown: drop them."""
        events: list[Event] = []
        for slot in running:
            assert slot.job is not None
            events.append(Failed(slot.job.id, 500, message))
            self._drop(slot)
        return events

    def _drop(self, slot: Slot) -> None:
        """End the slot's job and empty its cache."""
        self._release(slot)
        slots.forget(slot, self.model.memory)

    def _release(self, slot: Slot) -> None:
        if slot.job is not None:
            slot.job.close()
            slot.job = None
        slot.last_used = time.monotonic()

    def fail_all(self, message: str) -> list[Event]:
        """End every running and waiting request with `message`: the last resort when a
        step itself failed, after which the slots start empty and the worker goes on."""
        events: list[Event] = [Failed(r.id, 500, message) for r in self.queue]
        self.queue.clear()
        self._settle()
        return events + self._fail([s for s in self.slots if s.job is not None], message)

    def _settle(self) -> None:
        """Let a decode launched ahead finish, its tokens unread (its slots are dropped)."""
        if self._ahead is not None:
            llama_cpp.llama_synchronize(self.model.ctx)
            for slot, _ in self._ahead.fed:
                slots.forget(slot, self.model.memory)
            self._ahead = None

    def close(self) -> None:
        self._settle()
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
