"""One conversation slot of a loaded model: prompts in, tokens out, the KV cache kept.

The slot remembers which tokens its KV cache holds. A new request whose
prompt starts with them (the next turn of the same chat, the same system
prompt) only decodes what is new. Models whose cache cannot be cut back
(recurrent state, sliding-window layers) reuse it only when the new prompt
extends it exactly.

`generate()` is a generator that yields after every decode step, so the
worker can read a cancel between any two tokens.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import llama_cpp

from localllm.engine import tools as toolcalls
from localllm.engine.chat import render
from localllm.engine.grammar import grammar_for
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Done, Embed, Embedded, Failed, Generate, Piece, ToolCall
from localllm.engine.sampling import build_sampler
from localllm.engine.text import StopFilter, Utf8Stream
from localllm.errors import LocalLLMError


class PromptTooLong(LocalLLMError):
    pass


@dataclass
class Step:
    """What one decode step produced: text to stream, or the end."""

    event: Piece | Done | Failed | None = None


class Session:
    def __init__(self, model: LlamaModel) -> None:
        self.model = model
        self.cached: list[int] = []
        """The tokens whose keys and values are in the cache (sequence 0), in order."""

    # --- prompts --------------------------------------------------------------------

    def prompt_tokens(self, request: Generate) -> list[int]:
        """The request's prompt as tokens; PromptTooLong unless it fits or may be cut."""
        m = self.model
        limit = m.n_ctx - 1  # room for at least one new token
        if request.messages is None:
            tokens = m.tokenize(request.prompt or "", add_special=True)
        else:
            # Truncation drops the oldest messages first (the system prompt stays) ...
            messages = list(request.messages)
            tokens = self._chat_tokens(request, messages)
            while len(tokens) > limit and request.truncate:
                droppable = [i for i, x in enumerate(messages[:-1]) if x.get("role") != "system"]
                if not droppable:
                    break
                del messages[droppable[0]]
                tokens = self._chat_tokens(request, messages)
        if len(tokens) > limit:
            if not request.truncate:
                raise PromptTooLong(self._too_long(len(tokens)))
            # ... then the oldest tokens, keeping the BOS token.
            keep = tokens[:1] if m.add_bos and tokens else []
            tokens = keep + tokens[len(tokens) - (limit - len(keep)) :]
        return tokens

    def _chat_tokens(self, request: Generate, messages: list[dict[str, Any]]) -> list[int]:
        m = self.model
        template = request.template or m.chat_template
        tools = request.tools if request.tool_choice != "none" else ()
        text = render(template, messages, m.bos_text, m.eos_text, tools)
        starts_with_bos = bool(m.bos_text) and text.startswith(m.bos_text)
        return m.tokenize(text, add_special=m.add_bos and not starts_with_bos)

    def _too_long(self, n: int) -> str:
        return (
            f"the prompt is {n} tokens but the context holds {self.model.n_ctx} "
            f"(with room for at least one new token): shorten it, raise num_ctx, "
            f'or ask for truncation ("truncate": true)'
        )

    # --- the KV cache -------------------------------------------------------------------

    def _reuse(self, tokens: list[int]) -> int:
        """Keep the cached prefix shared with `tokens`; returns how many tokens it covers."""
        common = 0
        for a, b in zip(self.cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last token is decoded again for its logits
        can_cut = not (self.model.recurrent or self.model.has_swa)
        if common < len(self.cached) and (
            not can_cut or not llama_cpp.llama_memory_seq_rm(self.model.memory, 0, common, -1)
        ):
            common = 0
        if common == 0:
            llama_cpp.llama_memory_clear(self.model.memory, True)
        self.cached = self.cached[:common]
        return common

    def _decode(self, tokens: list[int]) -> None:
        array = (llama_cpp.llama_token * len(tokens))(*tokens)
        code = llama_cpp.llama_decode(
            self.model.ctx, llama_cpp.llama_batch_get_one(array, len(tokens))
        )
        if code != 0:
            self.cached = []
            llama_cpp.llama_memory_clear(self.model.memory, True)
            raise RuntimeError(f"llama_decode failed with code {code}")
        self.cached += tokens

    # --- generation -------------------------------------------------------------------

    def generate(self, request: Generate) -> Generator[Step]:
        """Steps of one request; the last step carries its Done or Failed."""
        start = time.perf_counter_ns()
        try:
            tokens = self.prompt_tokens(request)
            grammar = self._grammar(request)
        except LocalLLMError as exc:
            yield Step(Failed(request.id, 400, str(exc)))
            return
        sampler = build_sampler(self.model.vocab, self.model.n_vocab, request.sampling, grammar)
        try:
            yield from self._run(request, tokens, sampler, start)
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def _grammar(self, request: Generate) -> str | None:
        if request.tools and request.tool_choice == "required":
            template = request.template or self.model.chat_template
            return toolcalls.forced_call_grammar(request.tools, toolcalls.syntax_of(template))
        return grammar_for(request.format) if request.format else None

    def _run(
        self, request: Generate, tokens: list[int], sampler: Any, start: int
    ) -> Iterator[Step]:
        m = self.model
        cached = self._reuse(tokens)
        batch = m.settings.n_batch
        for i in range(cached, len(tokens), batch):
            self._decode(tokens[i : i + batch])
            yield Step()
        first = time.perf_counter_ns()
        utf8, stops = Utf8Stream(), StopFilter(request.sampling.stop)
        watch_tools = bool(request.tools) and request.tool_choice != "none"
        text: list[str] = []
        held = ""
        limit = request.sampling.num_predict
        n_eval, reason = 0, "stop"
        while True:
            token = llama_cpp.llama_sampler_sample(sampler, m.ctx, -1)
            if m.is_eog(token):
                break
            n_eval += 1
            out = stops.feed(utf8.feed(m.piece(token)))
            if out:
                text.append(out)
                if watch_tools and toolcalls.may_be_call(held + out):
                    held += out
                else:
                    out, held = held + out, ""
                    yield Step(Piece(request.id, out))
            if stops.stopped:
                break
            if 0 <= limit <= n_eval or len(self.cached) + 1 >= m.n_ctx:
                reason = "length"
                break
            self._decode([token])
            yield Step()
        if not stops.stopped:
            tail = stops.feed(utf8.flush()) + stops.flush()
            if tail:
                text.append(tail)
                held += tail
        content, calls = "".join(text), tuple[ToolCall, ...]()
        if watch_tools:
            content, calls = toolcalls.parse_calls(content)
            if calls:
                reason = "tool_calls" if reason == "stop" else reason
            elif held:
                yield Step(Piece(request.id, held))
        elif held:
            yield Step(Piece(request.id, held))
        end = time.perf_counter_ns()
        yield Step(
            Done(
                request.id,
                reason=reason,
                prompt_tokens=len(tokens),
                cached_tokens=cached,
                eval_tokens=n_eval,
                prompt_ns=first - start,
                eval_ns=end - first,
                content=content,
                tool_calls=calls,
            )
        )

    # --- embeddings -------------------------------------------------------------------

    def embed(self, request: Embed) -> Embedded | Failed:
        m = self.model
        vectors = []
        total = 0
        limit = min(m.settings.n_ubatch, m.n_ctx)
        llama_cpp.llama_set_embeddings(m.ctx, True)
        try:
            for text in request.inputs:
                tokens = m.tokenize(text, add_special=True)
                if len(tokens) > limit:
                    if not request.truncate:
                        return Failed(
                            request.id,
                            400,
                            f"an input is {len(tokens)} tokens, over the "
                            f"{limit} this model embeds at once; set truncate",
                        )
                    tokens = tokens[:limit]
                total += len(tokens)
                llama_cpp.llama_memory_clear(m.memory, True)
                self.cached = []
                array = (llama_cpp.llama_token * len(tokens))(*tokens)
                if llama_cpp.llama_decode(m.ctx, llama_cpp.llama_batch_get_one(array, len(tokens))):
                    return Failed(request.id, 500, "llama.cpp could not compute the embedding")
                pointer = llama_cpp.llama_get_embeddings_seq(m.ctx, 0)
                n_embd = llama_cpp.llama_model_n_embd(m.model)
                vector = [pointer[i] for i in range(n_embd)]
                norm = sum(v * v for v in vector) ** 0.5 or 1.0
                vectors.append(tuple(v / norm for v in vector))
        finally:
            llama_cpp.llama_set_embeddings(m.ctx, False)
            llama_cpp.llama_memory_clear(m.memory, True)
        return Embedded(request.id, tuple(vectors), total)
