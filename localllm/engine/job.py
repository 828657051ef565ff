"""One generation in progress: sampled tokens in, stream events out.

The engine decodes; a `Job` turns each token its sampler picked into text
(whole UTF-8 characters, stop sequences held back, the control tokens the
reply's format needs written out) and decides when the answer ends: the
model's end token, a stop sequence, `num_predict`, or a full slot.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import llama_cpp

from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Done, Event, Generate, Piece, TokenLogprob
from localllm.engine.rejection import RejectionSampler
from localllm.engine.speculation import Pace, PromptLookup
from localllm.engine.text import StopFilter, Utf8Stream

if TYPE_CHECKING:
    from localllm.engine.vision import Tokenized


class Job:
    def __init__(
        self,
        model: LlamaModel,
        request: Generate,
        tokens: list[int],
        cached: int,
        sampler: Any,
        start_ns: int,
        owns_sampler: bool = True,
    ) -> None:
        self.model = model
        self.request = request
        self.id = request.id
        self.prompt_tokens = len(tokens)
        self.cached_tokens = cached
        self.pending = tokens[cached:]
        """Tokens still to decode: the rest of the prompt, then each sampled token."""
        self.prefilling = True
        self.sampler = sampler
        self.owns_sampler = owns_sampler
        """False for a chain that stays attached to llama.cpp's graph (`graph_sampling`)."""
        self.graph_greedy = False
        """Its tokens are the graph's argmax of its rows (`engine.graph_argmax`)."""
        self.pace: Pace | None = None
        """How many tokens it guesses, when it speculates (`engine.speculation`)."""
        self.lookup: PromptLookup | None = None
        """Its prompt-lookup drafter (else the worker's draft model guesses)."""
        self.rejection: RejectionSampler | None = None
        """Its draws, for a sampled request that speculates (`engine.rejection`)."""
        self.vision: Tokenized | None = None
        """Its prompt's image chunks (`engine.vision`), when it has images."""
        self.encoded_images = 0
        self.lora: tuple[tuple[int, float], ...] = ()
        """The adapters it runs with (`engine.lora`)."""
        self.passes = 0
        self.start_ns = start_ns
        self.first_ns = 0
        self.n_eval = 0
        self.shifts = 0
        """Context shifts so far (`Generate.shift`)."""
        self._utf8 = Utf8Stream()
        self._stops = StopFilter(request.sampling.stop)
        self._preserved = model.control_tokens(request.preserve)
        self._text: list[str] = []
        self._logprobs: list[TokenLogprob] = []
        """Logprobs of tokens whose text has not gone out in a piece yet."""
        self._told = False
        self._unsent: list[int] = []
        """Tokens taken whose text has not been worked out yet (`flush`)."""
        self._ending: str | None = None
        """Why the answer ends, once `take` has seen it end."""
        self._done = False

    def logprob(self, entry: TokenLogprob) -> None:
        """The next accepted token's logprob (when the request asked for them)."""
        self._logprobs.append(entry)

    def _piece(self, text: str) -> Piece:
        logprobs, self._logprobs = tuple(self._logprobs), []
        if self._told:
            return Piece(self.id, text, logprobs)
        self._told = True  # the first piece says what the prompt was
        return Piece(self.id, text, logprobs, prompt_tokens=self.prompt_tokens,
                     cached_tokens=self.cached_tokens)  # fmt: skip

    def accept(self, token: int, cache_used: int, n_ctx: int) -> list[Event]:
        """Events for the sampled `token`; the last one is a Done when the answer ends.

        `cache_used`: tokens of this job's slot already in the KV cache; `n_ctx`: the
        slot's size (0: no limit, the engine shifts the context when it is full)."""
        self.take(token, cache_used, n_ctx)
        return self.flush()

    def take(self, token: int, cache_used: int, n_ctx: int) -> bool:
        """The cheap half of `accept`: count `token` and say whether the answer goes on
        after it (its end token, `num_predict` and the slot's size end it; a stop
        sequence is found in its text, by `flush`). Its text waits for `flush`, which
        the engine runs while the device computes the next step."""
        if self.prefilling:
            self.prefilling = False
            self.first_ns = time.perf_counter_ns()
        ending = self.ends_at(token, cache_used, n_ctx)
        if ending != "stop":
            self.n_eval += 1
            self._unsent.append(token)
        if ending is not None:
            self._ending, self.pending = ending, []
            return False
        self.pending = [token]
        return True

    def ends_at(self, token: int, cache_used: int, n_ctx: int) -> str | None:
        """Why the answer would end at `token` ("stop", "length"), None if it goes on
        (`take`'s rule, which the engine also asks before it decodes ahead)."""
        if self.model.is_eog(token):
            return "stop"
        limit = self.request.sampling.num_predict
        if 0 <= limit <= self.n_eval + 1 or 0 < n_ctx <= cache_used + 1:
            return "length"
        return None

    def flush(self) -> list[Event]:
        """The text of the tokens taken since the last flush, and the Done when the
        answer has ended: by `take`, or by a stop sequence in this text (then the
        tokens after it are dropped, and `pending` emptied)."""
        m, events = self.model, list[Event]()
        for i, token in enumerate(self._unsent):
            out = self._stops.feed(self._utf8.feed(m.piece(token, token in self._preserved)))
            if out:
                self._text.append(out)
                events.append(self._piece(out))
            if self._stops.stopped:
                self.n_eval -= len(self._unsent) - i - 1
                self._unsent = []
                return events + self._finish("stop")
        self._unsent = []
        if self._ending is not None:
            return events + self._finish(self._ending)
        return events

    @property
    def finished(self) -> bool:
        """Whether its Done has gone out."""
        return self._done

    def _finish(self, reason: str) -> list[Event]:
        events: list[Event] = []
        if not self._stops.stopped:
            tail = self._stops.feed(self._utf8.flush()) + self._stops.flush()
            if tail:
                self._text.append(tail)
                events.append(self._piece(tail))
        end = time.perf_counter_ns()
        first = self.first_ns or end
        events.append(
            Done(
                self.id,
                reason=reason,
                prompt_tokens=self.prompt_tokens,
                cached_tokens=self.cached_tokens,
                eval_tokens=self.n_eval,
                prompt_ns=first - self.start_ns,
                eval_ns=end - first,
                content="".join(self._text),
                stop_sequence=self._stops.matched,
                logprobs=tuple(self._logprobs),
                drafted=self.pace.drafted if self.pace else 0,
                accepted=self.pace.accepted if self.pace else 0,
                passes=self.passes,
                image_tokens=self.vision.image_tokens if self.vision else 0,
                encoded_images=self.encoded_images,
            )
        )
        self.pending = []
        self._done = True
        return events

    def close(self) -> None:
        if self.sampler is not None and self.owns_sampler:
            llama_cpp.llama_sampler_free(self.sampler)
        self.sampler = None
        if self.rejection is not None:
            self.rejection.close()
            self.rejection = None
        if self.vision is not None:
            self.vision.close()
            self.vision = None
