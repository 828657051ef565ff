"""OpenAI-compatible API (`/v1/...`): the shapes the official `openai` client expects,
SSE streams ending with `data: [DONE]`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from localllm.engine.protocol import MARKER, Done, Generate, Piece, TokenLogprob, ToolCall
from localllm.server.errors import APIError, message_of, parse
from localllm.server.images import check_vision, from_url, load_images
from localllm.server.inference import NO_REPEAT_PENALTY, chain
from localllm.server.logprobs import columns as logprob_columns
from localllm.server.logprobs import entries, requested
from localllm.server.schemas import (
    ChatCompletionBody,
    CompletionBody,
    EmbeddingsBody,
    NamedToolChoice,
    OpenAIMessage,
    OpenAISampling,
)
from localllm.server.state import state
from localllm.server.thinking import Think, thinking_for
from localllm.store.manifests import Manifest

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        except Exception as exc:  # after the 200: the error goes in the stream
            error = {"error": {"message": message_of(exc), "type": "server_error"}}
            yield b"data: " + json.dumps(error).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _options(body: OpenAISampling, max_tokens: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "presence_penalty": body.presence_penalty,
        "frequency_penalty": body.frequency_penalty,
        "num_predict": max_tokens,
        "ignore_eos": body.ignore_eos,
    }
    if body.stop is not None:
        options["stop"] = [body.stop] if isinstance(body.stop, str) else body.stop
    return {k: v for k, v in options.items() if v is not None}


def _usage(done: Done) -> dict[str, Any]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.eval_tokens,
        "total_tokens": done.prompt_tokens + done.eval_tokens,
        # OpenAI's field for prompt tokens served from the cache (the slot's prefix).
        "prompt_tokens_details": {"cached_tokens": done.cached_tokens},
    }


def _text(
    message: OpenAIMessage, where: str, images: list[tuple[bytes, str]], image_urls: bool
) -> str:
    """The message's text, a marker where each `image_url` part was (its bytes added to
    `images`)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    parts = []
    for i, part in enumerate(message.content):
        if part.type == "image_url" and part.image_url is not None:
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            at = f"{where}.content.{i}.image_url"
            images.append((from_url(url, at, image_urls), at))
            parts.append(MARKER)
            continue
        if part.type != "text":
            raise APIError(400, f"content parts of type {part.type!r} are not supported")
        parts.append(part.text or "")
    return "".join(parts)


def _messages(
    body: ChatCompletionBody, images: list[tuple[bytes, str]], image_urls: bool
) -> list[dict[str, Any]]:
    out = []
    for n, m in enumerate(body.messages):
        message: dict[str, Any] = {
            "role": "system" if m.role == "developer" else m.role,
            "content": _text(m, f"messages.{n}", images, image_urls),
        }
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.function.name,
                        "arguments": _arguments(c.function.arguments),
                    },
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
        if m.name:
            message["name"] = m.name
        out.append(message)
    return out


def _image_parts(body: ChatCompletionBody) -> list[bool]:
    return [
        True
        for m in body.messages
        if not isinstance(m.content, str | None)
        for part in m.content
        if part.type == "image_url"
    ]


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise APIError(400, f"tool call arguments are not JSON: {text[:80]!r}") from None


def _grammar(body: ChatCompletionBody) -> str | None:
    """`response_format` as a grammar; a 400 naming the bad part of a schema."""
    from localllm.constraints.grammar import json_grammar, schema_grammar

    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_grammar()
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise APIError(400, "response_format json_schema needs json_schema.schema")
    return schema_grammar(fmt.json_schema.schema_, "response_format.json_schema.schema")


def _tools(body: ChatCompletionBody) -> tuple[tuple[dict[str, Any], ...], str]:
    from localllm.constraints.grammar import check_tools

    tools = [t.model_dump(exclude_none=True) for t in body.tools or ()]
    check_tools(tools)
    choice = body.tool_choice or "auto"
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t["function"]["name"] == choice.function.name]
        if not tools:
            raise APIError(
                400, f"tool_choice names {choice.function.name!r}, which is not in tools"
            )
        return tuple(tools), "required"
    if choice == "required" and not tools:
        raise APIError(400, 'tool_choice "required" needs tools')
    return tuple(tools), choice


_EFFORTS: dict[str | None, Think] = {
    None: None, "none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
}  # fmt: skip
"""OpenAI's `reasoning_effort` as Ollama's `think`."""


def _tool_calls(calls: tuple[ToolCall, ...], first: int = 0) -> list[dict[str, Any]]:
    """OpenAI's tool calls; `first`: the index of the first (in a stream)."""
    return [
        {
            "index": first + i,
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
        }
        for i, c in enumerate(calls)
    ]


async def chat_completions(request: Request) -> Response:
    body = await parse(request, ChatCompletionBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    limit = body.max_completion_tokens or body.max_tokens
    options = inference.options(manifest, _options(body, limit), NO_REPEAT_PENALTY)
    encoded: list[tuple[bytes, str]] = []
    check_vision(manifest.name, manifest.projector is not None, _image_parts(body))
    user = _messages(body, encoded, state(request).settings.image_urls)
    has_system = any(m["role"] == "system" for m in user)
    messages = inference.base_messages(manifest, "" if has_system else None) + user
    tools, tool_choice = _tools(body)
    think = _EFFORTS[body.reasoning_effort]
    template = manifest.template or inference.chat_template(manifest)
    mode = thinking_for(think, template, manifest.name)
    gen = Generate(
        0,
        messages=tuple(messages),
        template=manifest.template,
        tools=tools,
        tool_choice=tool_choice,
        sampling=replace(
            inference.sampling(options), logprobs=requested(body.logprobs, body.top_logprobs)
        ),
        grammar=_grammar(body),
        think=mode.flag,
        think_level=mode.level,
        images=await load_images(encoded),
    )
    started = await inference.start(manifest, gen, options, inference.keep_alive(None), mode)
    rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    head = {"id": rid, "created": created, "model": body.model, "system_fingerprint": "localllm"}
    if not body.stream:
        _, done = await inference.complete(started)
        message: dict[str, Any] = {"role": "assistant", "content": done.content or None}
        if done.thinking:
            message["reasoning_content"] = done.thinking  # llama-server's field
        if done.tool_calls:
            message["tool_calls"] = [
                {k: v for k, v in c.items() if k != "index"} for c in _tool_calls(done.tool_calls)
            ]
        else:
            message["content"] = done.content
        choice = {
            "index": 0,
            "message": message,
            "logprobs": {"content": entries(done.logprobs)} if body.logprobs else None,
            "finish_reason": FINISH.get(done.reason, "stop"),
        }
        return JSONResponse(
            {**head, "object": "chat.completion", "choices": [choice], "usage": _usage(done)}
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        base = {**head, "object": "chat.completion.chunk"}
        role_sent = False
        n_calls = 0

        def chunk(delta: dict[str, Any], logprobs: Any, finish: str | None) -> dict[str, Any]:
            nonlocal role_sent
            if not role_sent:
                delta, role_sent = {"role": "assistant", **delta}, True
            choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return {**base, "choices": [choice]}

        async for event in chain(started):
            logprobs = {"content": entries(event.logprobs)} if body.logprobs else None
            if isinstance(event, Piece):
                delta: dict[str, Any] = {}
                if event.text:
                    delta["content"] = event.text
                if event.thinking:
                    delta["reasoning_content"] = event.thinking
                if event.calls:  # each call as soon as the model has written it
                    delta["tool_calls"] = _tool_calls(event.calls, n_calls)
                    n_calls += len(event.calls)
                yield chunk(delta, logprobs, None)
                continue
            yield chunk({}, logprobs, FINISH.get(event.reason, "stop"))
            if include_usage:
                yield {**base, "choices": [], "usage": _usage(event)}

    return sse(chunks())


async def completions(request: Request) -> Response:
    body = await parse(request, CompletionBody)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(400, "prompt: send one prompt per request")
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, _options(body, body.max_tokens), NO_REPEAT_PENALTY)
    sampling = inference.sampling(options)
    if body.logprobs is not None:
        sampling = replace(sampling, logprobs=body.logprobs)
    gen = Generate(
        0,
        prompt=prompts[0],
        suffix=body.suffix or None,
        template=manifest.template if body.suffix else None,
        sampling=sampling,
    )
    started = await inference.start(manifest, gen, options, inference.keep_alive(None))
    head = {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.model,
    }
    offset = len(prompts[0])

    def choice(text: str, logprobs: tuple[TokenLogprob, ...], finish: str | None) -> Any:
        nonlocal offset
        columns = None
        if body.logprobs is not None:
            columns, offset = logprob_columns(logprobs, offset)
        return {"index": 0, "text": text, "logprobs": columns, "finish_reason": finish}

    if not body.stream:
        text, done = await inference.complete(started)
        finish = FINISH.get(done.reason, "stop")
        return JSONResponse(
            {**head, "choices": [choice(text, done.logprobs, finish)], "usage": _usage(done)}
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        async for event in chain(started):
            if isinstance(event, Piece):
                yield {**head, "choices": [choice(event.text, event.logprobs, None)]}
                continue
            finish = FINISH.get(event.reason, "stop")
            yield {**head, "choices": [choice("", event.logprobs, finish)]}
            if include_usage:
                yield {**head, "choices": [], "usage": _usage(event)}

    return sse(chunks())


async def embeddings(request: Request) -> Response:
    body = await parse(request, EmbeddingsBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    inputs = (body.input,) if isinstance(body.input, str) else tuple(body.input)
    vectors, tokens, _ = await inference.embed(
        manifest, inputs, True, inference.options(manifest, {}), inference.keep_alive(None)
    )
    data: list[dict[str, Any]] = []
    for i, vector in enumerate(vectors):
        values: Any = list(vector[: body.dimensions] if body.dimensions else vector)
        if body.encoding_format == "base64":
            import base64
            import struct

            values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": values})
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _model_entry(manifest: Manifest) -> dict[str, Any]:
    name = manifest.name
    return {
        "id": name,
        "object": "model",
        "created": int(manifest.created),
        "owned_by": name.split("/")[0] if "/" in name else "library",
    }


async def models(request: Request) -> Response:
    data = [_model_entry(m) for m in state(request).store.list()]
    return JSONResponse({"object": "list", "data": data})


async def model(request: Request) -> Response:
    """`GET /v1/models/{id}`: one model, or OpenAI's 404 shape."""
    name = request.path_params["model"]
    return JSONResponse(_model_entry(state(request).inference.manifest(name)))


ROUTES = [
    Route("/v1/models", models, methods=["GET"]),
    Route("/v1/models/{model:path}", model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
