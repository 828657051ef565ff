"""Ollama's native API (`/api/...`): NDJSON streams, durations in nanoseconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localllm import __version__
from localllm.engine.protocol import Done, Generate, Piece, Sampling, ToolCall
from localllm.server.catalog import iso
from localllm.server.errors import APIError, parse
from localllm.server.images import check_vision, decode_base64, load_images, with_markers
from localllm.server.inference import Inference, Started, chain
from localllm.server.logprobs import entries, requested
from localllm.server.progress import ndjson
from localllm.server.schemas import (
    ChatBody,
    CopyBody,
    CreateBody,
    EmbedBody,
    GenerateBody,
    LegacyEmbeddingsBody,
    NameBody,
    ShowBody,
)
from localllm.server.state import state
from localllm.server.thinking import Think, Thinking, thinking_for
from localllm.store.manifests import Manifest


def now() -> str:
    return iso(time.time())


def head(name: str) -> dict[str, Any]:
    """The fields every Ollama response chunk starts with."""
    return {"model": name, "created_at": now()}


def _timings(done: Done, started: Started) -> dict[str, Any]:
    return {
        "done_reason": done.reason if done.reason != "tool_calls" else "stop",
        "total_duration": time.perf_counter_ns() - started.started_ns,
        "load_duration": started.load_ns,
        "prompt_eval_count": done.prompt_tokens,
        "prompt_eval_duration": done.prompt_ns,
        "eval_count": done.eval_tokens,
        "eval_duration": done.eval_ns,
        # beyond Ollama's shape: what speculative decoding did for this answer
        "speculation": {
            "drafted": done.drafted,
            "accepted": done.accepted,
            "passes": done.passes,
        },
    }


def _tool_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def _template(text: str | None) -> str | None:
    if not text:
        return None
    from localllm.store.templates import check_template

    return check_template(text)


def _grammar(fmt: str | dict[str, Any] | None) -> str | None:
    """`format` ("json" or a schema) as a grammar; a 400 naming the bad part if unusable."""
    from localllm.constraints.grammar import format_grammar

    return format_grammar(fmt) if fmt else None


def _tools(body: ChatBody) -> tuple[dict[str, Any], ...]:
    from localllm.constraints.grammar import check_tools

    tools = tuple(t.model_dump(exclude_none=True) for t in body.tools or ())
    check_tools(tools)
    return tools


async def _load_or_unload(
    inference: Inference,
    manifest: Manifest,
    options: dict[str, Any],
    keep_alive: Any,
    body: dict[str, Any],
) -> JSONResponse:
    seconds = inference.keep_alive(keep_alive)
    if seconds == 0:
        inference.unload(manifest)
        return JSONResponse(
            {
                **head(manifest.name),
                **body,
                "done": True,
                "done_reason": "unload",
            }
        )
    load_ns = await inference.load(manifest, options, seconds)
    return JSONResponse(
        {
            **head(manifest.name),
            **body,
            "done": True,
            "done_reason": "load",
            "load_duration": load_ns,
        }
    )


Fields = Callable[[str, str, tuple[ToolCall, ...]], dict[str, Any]]


async def _reply(
    inference: Inference, started: Started, name: str, stream: bool, fields: Fields
) -> Response:
    """A generation as one JSON object, or streamed as NDJSON chunks: the route's
    `fields(content, thinking, calls)` for each piece of the reply (each tool call in
    the piece where it completed), or for the whole reply when not streamed; then
    the timings."""

    def logprobs(event: Piece | Done) -> dict[str, Any]:
        return {"logprobs": entries(event.logprobs)} if event.logprobs else {}

    if not stream:
        _, done = await inference.complete(started)
        return JSONResponse(
            {**head(name), **fields(done.content, done.thinking, done.tool_calls),
             **logprobs(done), "done": True, **_timings(done, started)}
        )  # fmt: skip

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        async for event in chain(started):
            if isinstance(event, Piece):
                yield {**head(name), **fields(event.text, event.thinking, event.calls),
                       **logprobs(event), "done": False}  # fmt: skip
            else:
                yield {**head(name), **fields("", "", ()), **logprobs(event), "done": True,
                       **_timings(event, started)}  # fmt: skip

    return ndjson(chunks())


def _sampling(
    inference: Inference, options: dict[str, Any], logprobs: bool, top: int | None
) -> Sampling:
    return replace(inference.sampling(options), logprobs=requested(logprobs, top))


def _thinking(
    inference: Inference, manifest: Manifest, think: Think, template: str | None
) -> Thinking:
    return thinking_for(think, template or inference.chat_template(manifest), manifest.name)


async def generate(request: Request) -> Response:
    body = await parse(request, GenerateBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, body.options.model_dump(exclude_none=True))
    check_vision(manifest.name, manifest.projector is not None, body.images or ())
    if not body.prompt:
        return await _load_or_unload(
            inference, manifest, options, body.keep_alive, {"response": ""}
        )
    messages: tuple[dict[str, Any], ...] | None = None
    insert = bool(body.suffix)  # fill in the middle: the prompt is the text before
    encoded = [
        (decode_base64(x, f"images.{i}"), f"images.{i}") for i, x in enumerate(body.images or ())
    ]
    if encoded and insert:
        raise APIError(400, "images: images cannot go with a suffix (fill in the middle)")
    prompt = with_markers(body.prompt or "", len(encoded))
    if not body.raw and not insert:
        chat = inference.base_messages(manifest, body.system)
        messages = (*chat, {"role": "user", "content": prompt})
    template = None if body.raw else _template(body.template) or manifest.template
    mode = _thinking(inference, manifest, None if body.raw else body.think, template)
    gen = Generate(
        0,
        messages=messages,
        prompt=prompt if body.raw or insert else None,
        suffix=body.suffix if insert else None,
        template=template,
        sampling=_sampling(inference, options, body.logprobs, body.top_logprobs),
        grammar=_grammar(body.format),
        truncate=body.truncate,
        shift=body.shift,
        num_keep=int(options.get("num_keep", 4)),
        think=mode.flag,
        think_level=mode.level,
        images=await load_images(encoded),
    )
    keep_alive = inference.keep_alive(body.keep_alive)
    started = await inference.start(
        manifest, gen, options, keep_alive, None if body.raw or insert else mode
    )

    def fields(content: str, thinking: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
        return {"response": content, **({"thinking": thinking} if thinking else {})}

    return await _reply(inference, started, manifest.name, body.stream, fields)


def _chat_messages(body: ChatBody) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]]]:
    """The messages, with a marker for each of their images (Ollama puts them before
    the text, or at its `[img]` tags), and those images' bytes in order."""
    out = []
    encoded: list[tuple[bytes, str]] = []
    for n, m in enumerate(body.messages):
        where = [f"messages.{n}.images.{i}" for i in range(len(m.images or ()))]
        encoded += [(decode_base64(x, w), w) for x, w in zip(m.images or (), where, strict=True)]
        content = with_markers(m.content or "", len(where))
        message: dict[str, Any] = {"role": m.role, "content": content}
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in m.tool_calls
            ]
        if m.tool_name:
            message["name"] = m.tool_name
        out.append(message)
    return out, encoded


def _has_images(body: ChatBody) -> list[bool]:
    return [True for m in body.messages if m.images]


async def chat_request(
    inference: Inference, manifest: Manifest, body: ChatBody, options: dict[str, Any]
) -> tuple[Generate, Thinking]:
    """The one internal request of a chat (the Modelfile's system prompt and messages
    before the request's, its template, tools, sampling, format and `think`), and how
    its reply's thinking is split."""
    user, encoded = _chat_messages(body)
    has_system = any(m["role"] == "system" for m in user)
    messages = inference.base_messages(manifest, "" if has_system else None) + user
    mode = _thinking(inference, manifest, body.think, manifest.template)
    gen = Generate(
        0,
        messages=tuple(messages),
        template=manifest.template,
        tools=_tools(body),
        sampling=_sampling(inference, options, body.logprobs, body.top_logprobs),
        grammar=_grammar(body.format),
        truncate=body.truncate,
        shift=body.shift,
        num_keep=int(options.get("num_keep", 4)),
        think=mode.flag,
        think_level=mode.level,
        images=await load_images(encoded),
    )
    return gen, mode


async def chat(request: Request) -> Response:
    body = await parse(request, ChatBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, body.options.model_dump(exclude_none=True))
    if not body.messages:
        reply = {"message": {"role": "assistant", "content": ""}}
        return await _load_or_unload(inference, manifest, options, body.keep_alive, reply)
    check_vision(manifest.name, manifest.projector is not None, _has_images(body))
    gen, mode = await chat_request(inference, manifest, body, options)
    keep_alive = inference.keep_alive(body.keep_alive)
    started = await inference.start(manifest, gen, options, keep_alive, mode)

    def fields(content: str, thinking: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = _tool_calls(calls)
        return {"message": message}

    return await _reply(inference, started, manifest.name, body.stream, fields)


async def embed(request: Request) -> Response:
    body = await parse(request, EmbedBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, body.options.model_dump(exclude_none=True))
    inputs = (body.input,) if isinstance(body.input, str) else tuple(body.input)
    started = time.perf_counter_ns()
    vectors, tokens, load_ns = await inference.embed(
        manifest, inputs, body.truncate, options, inference.keep_alive(body.keep_alive)
    )
    return JSONResponse(
        {
            "model": manifest.name,
            "embeddings": [list(v) for v in vectors],
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": load_ns,
            "prompt_eval_count": tokens,
        }
    )


async def embeddings(request: Request) -> Response:
    body = await parse(request, LegacyEmbeddingsBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, body.options.model_dump(exclude_none=True))
    vectors, _, _ = await inference.embed(
        manifest, (body.prompt,), True, options, inference.keep_alive(body.keep_alive)
    )
    return JSONResponse({"embedding": list(vectors[0])})


# --- models -----------------------------------------------------------------------------


async def version(request: Request) -> Response:
    """Ollama's `{"version"}`, and beyond it what the CLI checks before it trusts this
    server: the models folder it serves and its process (for `serve --stop`)."""
    import os

    return JSONResponse(
        {
            "version": __version__,
            "localllm": {"models": str(state(request).store.root.resolve()), "pid": os.getpid()},
        }
    )


async def root(request: Request) -> Response:
    return Response("localllm is running", media_type="text/plain")


async def tags(request: Request) -> Response:
    catalog = state(request).catalog
    models = await asyncio.to_thread(catalog.entries)
    return JSONResponse({"models": models})


async def ps(request: Request) -> Response:
    s = state(request)
    workers = await asyncio.to_thread(s.scheduler.worker_health)
    # "workers" is beyond Ollama's shape: the RPC workers, their models and health.
    return JSONResponse({"models": s.catalog.running(), "workers": workers})


async def show(request: Request) -> Response:

    body = await parse(request, ShowBody)
    s = state(request)
    manifest = s.inference.manifest(body.target)
    from localllm.store.modelfile import PARAMETERS

    options = {
        k: v for k, v in body.options.model_dump(exclude_none=True).items() if k in PARAMETERS
    }
    if body.system is not None or body.template or options:
        manifest = replace(
            manifest,
            system=body.system if body.system is not None else manifest.system,
            template=_template(body.template) or manifest.template,
            parameters={**manifest.parameters, **options},
        )
    return JSONResponse(await asyncio.to_thread(s.catalog.show, manifest, body.verbose))


async def copy(request: Request) -> Response:
    body = await parse(request, CopyBody)
    s = state(request)
    from localllm.store.names import parse_name

    source = s.inference.manifest(body.source)
    await asyncio.to_thread(s.store.copy, parse_name(source.name), parse_name(body.destination))
    return JSONResponse({})


async def delete(request: Request) -> Response:
    body = await parse(request, NameBody)
    s = state(request)
    from localllm.store.names import parse_name

    manifest = s.inference.manifest(body.target)
    s.inference.unload(manifest)
    await asyncio.to_thread(s.store.remove, parse_name(manifest.name))
    return JSONResponse({})


async def pull(request: Request) -> Response:
    body = await parse(request, NameBody)
    if not body.target:
        raise APIError(400, "model is required")
    return await state(request).catalog.pull(body.target, body.stream)


async def create(request: Request) -> Response:
    body = await parse(request, CreateBody)
    return await state(request).catalog.create(body)


ROUTES = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/ps", ps, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/embed", embed, methods=["POST"]),
    Route("/api/embeddings", embeddings, methods=["POST"]),
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/create", create, methods=["POST"]),
    Route("/api/copy", copy, methods=["POST"]),
    Route("/api/delete", delete, methods=["DELETE"]),
]
