"""What both APIs share: a model name to its manifest, options to sampling, and one
request through the scheduler and a worker.

Errors found before the first token (unknown model, prompt too long, a bad
format) raise here, so the routes answer them with a status code instead of
inside a stream that already said 200.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, fields, replace
from typing import Any

from localllm.engine.protocol import Done, Generate, Piece, Sampling, TokenLogprob
from localllm.formats import Parser
from localllm.server import access_log
from localllm.server.errors import APIError
from localllm.server.prompt_size import bound_inputs, bound_prompt
from localllm.server.settings import ServerSettings, parse_keep_alive
from localllm.server.thinking import Thinking
from localllm.store.manifests import Manifest
from localllm.store.store import Store
from localllm.workers.runner import Runner
from localllm.workers.scheduler import Scheduler

_SAMPLING = {f.name for f in fields(Sampling)}
NO_REPEAT_PENALTY = {"repeat_penalty": 1.0}
"""The defaults of the APIs that have no repeat penalty (OpenAI's and Anthropic's: their
penalties are presence and frequency, default 0): none applies unless the Modelfile
sets one, as in llama-server's OpenAI API."""


@dataclass
class Started:
    """A generation that has produced its first event."""

    first: Piece | Done
    rest: AsyncIterator[Piece | Done]
    load_ns: int
    started_ns: int


class Inference:
    def __init__(self, scheduler: Scheduler, store: Store, settings: ServerSettings) -> None:
        self.scheduler = scheduler
        self.store = store
        self.settings = settings
        self._templates: dict[str, str | None] = {}

    def manifest(self, name: str) -> Manifest:
        from localllm.store.names import parse_name
        from localllm.store.pull import stored_name_for

        if not name:
            raise APIError(400, "model is required")
        manifest = self.store.get(stored_name_for(name, self.store) or parse_name(name))
        access_log.model(manifest.name)
        return manifest

    def chat_template(self, manifest: Manifest) -> str | None:
        """The template a chat with `manifest` renders with: the Modelfile's, else the
        GGUF's own (read from its header once per weights file)."""
        if manifest.template:
            return manifest.template
        digest = manifest.model.digest
        if digest not in self._templates:
            from localllm.workers.loading import read_model

            info, _ = read_model(manifest, self.store)
            self._templates[digest] = info.chat_template
        return self._templates[digest]

    def keep_alive(self, value: Any) -> float | None:
        return parse_keep_alive(value, self.settings.keep_alive_s)

    @staticmethod
    def options(
        manifest: Manifest, requested: dict[str, Any], defaults: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The API's `defaults`, overridden by the Modelfile's parameters, overridden by
        the request's options."""
        merged = {**(defaults or {}), **manifest.parameters}
        merged.update({k: v for k, v in requested.items() if v is not None})
        return merged

    @staticmethod
    def sampling(options: dict[str, Any]) -> Sampling:
        values = {k: v for k, v in options.items() if k in _SAMPLING and v is not None}
        stop = values.get("stop")
        if isinstance(stop, str):
            values["stop"] = (stop,)
        elif stop is not None:
            values["stop"] = tuple(stop)
        if values.get("num_predict") == -2:
            values["num_predict"] = -1  # Ollama's "fill the context": stop when it is full
        return Sampling(**values)

    @staticmethod
    def base_messages(manifest: Manifest, system: str | None = None) -> list[dict[str, Any]]:
        """The Modelfile's SYSTEM (or the request's) and MESSAGEs, before the request's own."""
        out: list[dict[str, Any]] = []
        text = system if system is not None else manifest.system
        if text:
            out.append({"role": "system", "content": text})
        out += [{"role": m.role, "content": m.content} for m in manifest.messages]
        return out

    def chat(
        self, manifest: Manifest, messages: list[dict[str, Any]], mode: Thinking, **fields: Any
    ) -> Generate:
        """The one internal chat request: the Modelfile's SYSTEM (unless the request brings
        its own) and MESSAGEs before the request's `messages`, the Modelfile's template,
        `think` as `mode` says, and the API's other `fields` (tools, sampling...)."""
        has_system = any(m["role"] == "system" for m in messages)
        before = self.base_messages(manifest, "" if has_system else None)
        return Generate(
            0,
            messages=tuple(before + messages),
            template=manifest.template,
            think=mode.flag,
            think_level=mode.level,
            **fields,
        )

    async def load(
        self, manifest: Manifest, options: dict[str, Any], keep_alive: float | None
    ) -> int:
        """Load without generating (an empty prompt); returns nanoseconds spent loading."""
        start = time.perf_counter_ns()
        runner = await self.scheduler.acquire(manifest, options)
        self.scheduler.release(runner, keep_alive)
        return time.perf_counter_ns() - start

    def unload(self, manifest: Manifest) -> bool:
        """Unload once the model's requests in flight have ended (never cut them off)."""
        return self.scheduler.unload_when_idle(manifest.name)

    async def start(
        self,
        manifest: Manifest,
        request: Generate,
        options: dict[str, Any],
        keep_alive: float | None,
        mode: Thinking | None = None,
    ) -> Started:
        """Start `request`; a chat (or templated prompt) gives its `mode`, and its reply
        is then parsed in the model's format (`localllm.server.replies`)."""
        constrained = request.grammar is not None or request.tool_choice == "required"
        if request.sampling.ignore_eos and constrained:
            raise APIError(
                400,
                "ignore_eos cannot be combined with a format or a required tool call: "
                "the grammar decides where the answer ends",
            )
        started = time.perf_counter_ns()
        runner = await self.scheduler.acquire(manifest, options)
        load_ns = time.perf_counter_ns() - started
        try:
            request = bound_prompt(request, runner.context)
            request, parser = _prepared(request, runner, mode)
        except BaseException:
            self.scheduler.release(runner, keep_alive)
            raise
        events = self._events(runner, request, keep_alive)
        if parser is not None and mode is not None:
            from localllm.server.replies import parsed

            events = parsed(events, parser, mode.keep)
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        return Started(first, events, load_ns, started)

    async def _events(
        self, runner: Runner, request: Generate, keep_alive: float | None
    ) -> AsyncGenerator[Piece | Done]:
        try:
            async for event in runner.generate(request):
                if isinstance(event, Done):
                    access_log.tokens(event.prompt_tokens, event.eval_tokens)
                yield event
        finally:
            self.scheduler.release(runner, keep_alive)

    async def complete(self, started: Started) -> tuple[str, Done]:
        """Drain a started generation: (all its text, its Done, whose `logprobs` are then
        those of the whole answer)."""
        text: list[str] = []
        logprobs: list[TokenLogprob] = []
        event = started.first
        async for later in _chain(event, started.rest):
            if isinstance(later, Piece):
                text.append(later.text)
                logprobs += later.logprobs
            else:
                return "".join(text), replace(later, logprobs=(*logprobs, *later.logprobs))
        raise APIError(500, "the generation ended without a result")

    async def render(
        self, manifest: Manifest, request: Generate, options: dict[str, Any]
    ) -> tuple[str, int]:
        """(the prompt text `request` would feed the model, its tokens): rendered by the
        model's worker, with the code a generation renders with."""
        runner = await self.scheduler.acquire(manifest, options)
        try:
            request = bound_prompt(request, runner.context)
            rendered = await runner.render(request)
        finally:
            self.scheduler.release(runner, self.keep_alive(None))
        return rendered.prompt, rendered.tokens

    async def embed(
        self,
        manifest: Manifest,
        inputs: tuple[str, ...],
        truncate: bool,
        options: dict[str, Any],
        keep_alive: float | None,
    ) -> tuple[tuple[tuple[float, ...], ...], int, int]:
        """(vectors, prompt tokens, load ns)."""
        started = time.perf_counter_ns()
        runner = await self.scheduler.acquire(manifest, options)
        load_ns = time.perf_counter_ns() - started
        try:
            inputs = bound_inputs(inputs, runner.context, truncate)
            result = await runner.embed(inputs, truncate)
        finally:
            self.scheduler.release(runner, keep_alive)
        access_log.tokens(result.prompt_tokens, 0)
        return result.vectors, result.prompt_tokens, load_ns


def _prepared(
    request: Generate, runner: Runner, mode: Thinking | None
) -> tuple[Generate, Parser | None]:
    """`request` as the template the model really runs with (known once it is loaded)
    needs it, and the parser of its reply (None: raw text, as for a raw prompt).

    The reply's format names the control tokens the worker must write out; with
    `tool_choice` "required", the grammar of one call in the format's syntax (the
    tools were checked by the route)."""
    if request.messages is None or mode is None:
        return request, None
    from localllm.formats import format_for

    template = request.template or (runner.loaded.chat_template if runner.loaded else None)
    fmt = format_for(template)
    tools = request.tools if request.tool_choice != "none" else ()
    parser = fmt.parser(thinking=mode.split, inside=mode.inside, tools=tools)
    request = replace(request, preserve=fmt.preserved)
    if not request.tools or request.tool_choice != "required" or request.grammar is not None:
        return request, parser
    from localllm.constraints.grammar import tool_call_grammar

    return replace(request, grammar=tool_call_grammar(request.tools, fmt.call_syntax)), parser


async def _chain(
    first: Piece | Done, rest: AsyncIterator[Piece | Done]
) -> AsyncIterator[Piece | Done]:
    yield first
    async for event in rest:
        yield event


def chain(started: Started) -> AsyncIterator[Piece | Done]:
    return _chain(started.first, started.rest)
