"""The inference service every dialect calls: a typed request in, the core's events out.

It finds the model, applies the recipe (`localllm.inference.recipe`), decodes the
images, takes a worker from the scheduler and hands it back when the answer ends.
Errors found before the first token (unknown model, prompt too long, a bad format)
raise from `chat`/`prompt`, so the dialect answers them with a status code instead
of inside a stream that already said 200.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from localllm.constraints.grammar import tool_call_grammar
from localllm.engine.protocol import Done, Generate, Piece, TokenLogprob
from localllm.errors import APIError
from localllm.formats import Parser, format_for
from localllm.inference import recipe, record
from localllm.inference.events import Delta, Event, Finished, Usage
from localllm.inference.images import load_images
from localllm.inference.options import options
from localllm.inference.prompt_size import bound_inputs, bound_prompt
from localllm.inference.replies import parsed
from localllm.inference.request import (
    ChatRequest,
    EmbedRequest,
    ImageIn,
    KeepAlive,
    PromptRequest,
    RerankRequest,
    Sampling,
)
from localllm.inference.thinking import Thinking
from localllm.store.manifests import Manifest
from localllm.store.resolve import stored
from localllm.store.store import Store
from localllm.units import parse_keep_alive
from localllm.workers.runner import Runner
from localllm.workers.scheduler import Scheduler


@dataclass
class Reply:
    """An answer that has produced its first event; iterate it for all its events."""

    model: str
    """The model's full name (`name:tag`)."""
    first: Event
    rest: AsyncIterator[Event]
    prompt: Usage = field(default_factory=Usage)
    """What is known of the usage before the answer: its prompt's tokens (and those
    from the cache), for APIs that state them first (Anthropic's `message_start`)."""

    async def __aiter__(self) -> AsyncIterator[Event]:
        yield self.first
        async for event in self.rest:
            yield event

    async def whole(self) -> Finished:
        """Drain the answer: its `Finished`, whose logprobs are the whole answer's."""
        logprobs: list[TokenLogprob] = []
        async for event in self:
            logprobs += event.logprobs
            if isinstance(event, Finished):
                return replace(event, logprobs=tuple(logprobs))
        raise APIError(500, "the generation ended without a result")


@dataclass(frozen=True)
class Embeddings:
    model: str
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int
    load_ns: int
    total_ns: int


@dataclass(frozen=True)
class Ranking:
    model: str
    results: tuple[tuple[int, float], ...]
    """(the document's index in the request, its score), best first."""
    prompt_tokens: int


def shortened(vector: tuple[float, ...], n: int) -> tuple[float, ...]:
    """The first `n` values, normalised again (a Matryoshka model's shorter embedding)."""
    head = vector[:n]
    norm = sum(v * v for v in head) ** 0.5 or 1.0
    return tuple(v / norm for v in head)


class Inference:
    def __init__(
        self, scheduler: Scheduler, store: Store, keep_alive_s: float | None, image_urls: bool
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self.keep_alive_s = keep_alive_s
        self.image_urls = image_urls
        """Whether requests may name http(s) images for the server to fetch."""
        self._templates: dict[str, str | None] = {}

    def manifest(self, name: str) -> Manifest:
        if not name:
            raise APIError(400, "model is required")
        manifest = stored(name, self.store)
        record.model(manifest.name)
        return manifest

    def gguf_template(self, manifest: Manifest) -> str | None:
        """The chat template of the model's file (read from its header once per file)."""
        digest = manifest.model.digest
        if digest not in self._templates:
            info, _ = self.store.read_model(manifest)
            self._templates[digest] = info.chat_template
        return self._templates[digest]

    def keep_alive(self, value: KeepAlive) -> float | None:
        return parse_keep_alive(value, self.keep_alive_s)

    async def _images(self, manifest: Manifest, images: tuple[ImageIn, ...]) -> Any:
        has_projector = manifest.projector is not None
        return await load_images(images, manifest.name, has_projector, self.image_urls)

    async def chat_recipe(self, request: ChatRequest) -> tuple[Manifest, recipe.Recipe]:
        manifest = self.manifest(request.model)
        template = None if manifest.template else self.gguf_template(manifest)
        images = await self._images(manifest, recipe.images(request))
        return manifest, recipe.chat(request, manifest, template, images)

    async def chat(self, request: ChatRequest) -> Reply:
        manifest, made = await self.chat_recipe(request)
        return await self._start(manifest, made, self.keep_alive(request.keep_alive))

    async def prompt(self, request: PromptRequest) -> Reply:
        manifest = self.manifest(request.model)
        made = recipe.prompt(request, manifest, await self._images(manifest, request.images))
        return await self._start(manifest, made, self.keep_alive(request.keep_alive))

    async def count(self, request: ChatRequest) -> tuple[str, int]:
        """(the prompt text `request` would feed the model, its tokens): rendered by the
        model's worker, with the code a generation renders with."""
        manifest, made = await self.chat_recipe(request)
        runner = await self.scheduler.acquire(manifest, made.options, record.who())
        try:
            rendered = await runner.render(bound_prompt(made.generate, runner.context))
        finally:
            self.scheduler.release(runner, self.keep_alive(None))
        return rendered.prompt, rendered.tokens

    async def load(self, model: str, sampling: Sampling, keep_alive: KeepAlive) -> tuple[str, int]:
        """Load without generating (nanoseconds spent loading), or with a keep_alive of 0
        unload once the model's requests in flight have ended (-1)."""
        manifest = self.manifest(model)
        seconds = self.keep_alive(keep_alive)
        if seconds == 0:
            self.scheduler.unload_when_idle(manifest.name)
            return manifest.name, -1
        start = time.perf_counter_ns()
        runner = await self.scheduler.acquire(manifest, options(sampling, manifest), record.who())
        self.scheduler.release(runner, seconds)
        return manifest.name, time.perf_counter_ns() - start

    async def embed(self, request: EmbedRequest) -> Embeddings:
        started = time.perf_counter_ns()
        manifest = self.manifest(request.model)
        merged = options(Sampling(request.options), manifest)
        runner = await self.scheduler.acquire(manifest, merged, record.who())
        load_ns = time.perf_counter_ns() - started
        try:
            inputs = bound_inputs(request.inputs, runner.context, request.truncate)
            result = await runner.embed(inputs, request.truncate)
        finally:
            self.scheduler.release(runner, self.keep_alive(request.keep_alive))
        record.tokens(result.prompt_tokens, 0)
        total = time.perf_counter_ns() - started
        vectors = result.vectors
        if request.dimensions:
            vectors = tuple(shortened(v, request.dimensions) for v in vectors)
        return Embeddings(manifest.name, vectors, result.prompt_tokens, load_ns, total)

    async def rerank(self, request: RerankRequest) -> Ranking:
        """The documents' scores, best first (the `top_n` best, when given)."""
        manifest = self.manifest(request.model)
        runner = await self.scheduler.acquire(manifest, options(Sampling({}), manifest),
                                              record.who())  # fmt: skip
        try:
            query = bound_inputs((request.query,), runner.context, request.truncate)[0]
            documents = bound_inputs(request.documents, runner.context, request.truncate)
            result = await runner.rank(query, documents, request.truncate)
        finally:
            self.scheduler.release(runner, self.keep_alive(request.keep_alive))
        record.tokens(result.prompt_tokens, 0)
        order = sorted(range(len(result.scores)), key=lambda i: -result.scores[i])
        kept = order[: request.top_n] if request.top_n else order
        return Ranking(manifest.name, tuple((i, result.scores[i]) for i in kept),
                       result.prompt_tokens)  # fmt: skip

    async def _start(
        self, manifest: Manifest, made: recipe.Recipe, keep_alive: float | None
    ) -> Reply:
        request = made.generate
        constrained = request.grammar is not None or request.tool_choice == "required"
        if request.sampling.ignore_eos and constrained:
            raise APIError(
                400,
                "ignore_eos cannot be combined with a format or a required tool call: "
                "the grammar decides where the answer ends",
            )
        started = time.perf_counter_ns()
        runner = await self.scheduler.acquire(manifest, made.options, record.who())
        load_ns = time.perf_counter_ns() - started
        try:
            request = bound_prompt(request, runner.context)
            request, parser = _prepared(request, runner, made.thinking)
        except BaseException:
            self.scheduler.release(runner, keep_alive)
            raise

        def usage(done: Done) -> Usage:
            return Usage(
                done.prompt_tokens,
                done.cached_tokens,
                done.eval_tokens,
                done.prompt_ns,
                done.eval_ns,
                load_ns,
                time.perf_counter_ns() - started,
                done.drafted,
                done.accepted,
                done.passes,
            )

        keep = made.thinking.keep if made.thinking else True
        prompt: list[Usage] = []
        raw = self._events(runner, request, keep_alive, prompt)
        events = parsed(raw, parser, keep, usage)
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        if isinstance(first, Finished):
            prompt.append(first.usage)
        return Reply(manifest.name, first, events, prompt[0] if prompt else Usage())

    async def _events(
        self, runner: Runner, request: Generate, keep_alive: float | None, prompt: list[Usage]
    ) -> AsyncGenerator[Piece | Done]:
        """The worker's events; the prompt's usage (from the first piece) into `prompt`."""
        try:
            async for event in runner.generate(request):
                if isinstance(event, Piece) and event.prompt_tokens and not prompt:
                    prompt.append(Usage(event.prompt_tokens, event.cached_tokens))
                    record.first_token()
                if isinstance(event, Done):
                    if event.eval_tokens:
                        record.first_token()
                    record.tokens(event.prompt_tokens, event.eval_tokens, event.prompt_ns / 1e9)
                yield event
        finally:
            self.scheduler.release(runner, keep_alive)


def _prepared(
    request: Generate, runner: Runner, mode: Thinking | None
) -> tuple[Generate, Parser | None]:
    """`request` as the template the model really runs with (known once it is loaded)
    needs it, and the parser of its reply (None: raw text, as for a raw prompt).

    The reply's format names the control tokens the worker must write out; with
    `tool_choice` "required", the grammar of one call in the format's syntax (the
    tools were checked by the recipe)."""
    if request.messages is None or mode is None:
        return request, None
    template = request.template or (runner.loaded.chat_template if runner.loaded else None)
    fmt = format_for(template)
    tools = request.tools if request.tool_choice != "none" else ()
    parser = fmt.parser(thinking=mode.split, inside=mode.inside, tools=tools)
    request = replace(request, preserve=fmt.preserved)
    if not request.tools or request.tool_choice != "required" or request.grammar is not None:
        return request, parser
    return replace(request, grammar=tool_call_grammar(request.tools, fmt.call_syntax)), parser


__all__ = ["Delta", "Embeddings", "Finished", "Inference", "Reply"]
