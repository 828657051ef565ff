"""Ollama's bodies decoded into the core's typed requests.

Ollama's own rules live here: images are base64 files placed before a message's text
or at its `[img]` tags; `/api/generate` is a chat of one user message (its `system`
first) unless it is `raw` or fills in the middle (`suffix`); `options` are already
the core's vocabulary.
"""

from __future__ import annotations

import json
from typing import Any

from localllm.dialects.logprobs import requested
from localllm.dialects.ollama.protocol import ChatBody, GenerateBody, OllamaMessage, Options
from localllm.errors import APIError
from localllm.inference.images import decode_base64
from localllm.inference.request import (
    IMAGE,
    CallIn,
    ChatRequest,
    Format,
    ImageIn,
    Message,
    Part,
    PromptRequest,
    Sampling,
    Text,
    Tool,
    role,
)


def image(text: str, where: str) -> ImageIn:
    """A base64 image file (Ollama's `images` items)."""
    return ImageIn(where, decode_base64(text, where))


def with_images(content: str, images: list[ImageIn]) -> tuple[Part, ...]:
    """`content` with its images: at its `[img]` tags, the rest before the text (as
    Ollama writes a message's images into its prompt)."""
    pieces = content.split("[img]", len(images))
    tagged = len(pieces) - 1
    parts: list[Part] = list(images[tagged:])
    for i, piece in enumerate(pieces):
        if piece:
            parts.append(Text(piece))
        if i < tagged:
            parts.append(images[i])
    return tuple(parts)


def sampling(options: Options, logprobs: bool, top: int | None) -> Sampling:
    return Sampling(options.model_dump(exclude_none=True), logprobs=requested(logprobs, top))


def fmt(value: str | dict[str, Any] | None) -> Format | None:
    """`format`: "json" or a JSON schema ("" or null: none)."""
    if not value:
        return None
    if isinstance(value, str):
        if value != "json":
            raise APIError(400, f'format: must be "json" or a JSON schema object, not {value!r}')
        return Format(None, "format")
    return Format(value, "format")


def _message(m: OllamaMessage, n: int) -> Message:
    images = [image(x, f"messages.{n}.images.{i}") for i, x in enumerate(m.images or ())]
    calls = tuple(
        CallIn(c.function.name, _arguments(c.function.arguments, f"messages.{n}.tool_calls.{i}"))
        for i, c in enumerate(m.tool_calls or ())
    )
    return Message(
        role(m.role, f"messages.{n}.role"),
        with_images(m.content or "", images),
        m.thinking or "",
        calls,
        name=m.tool_name or "",
    )


def _arguments(value: dict[str, Any] | str, where: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise APIError(400, f"{where}.function.arguments: must be a JSON object")
    return parsed


def chat(body: ChatBody) -> ChatRequest:
    return ChatRequest(
        body.model,
        tuple(_message(m, n) for n, m in enumerate(body.messages)),
        tools=tuple(
            Tool(t.function.name, t.function.description or "", t.function.parameters)
            for t in body.tools or ()
        ),
        format=fmt(body.format),
        sampling=sampling(body.options, body.logprobs, body.top_logprobs),
        think=body.think,
        truncate=body.truncate,
        shift=body.shift,
        keep_alive=body.keep_alive,
        stream=body.stream,
    )


def generate(body: GenerateBody) -> ChatRequest | PromptRequest:
    """A chat of one user message, or (raw, or with a suffix) a prompt to continue."""
    images = [image(x, f"images.{i}") for i, x in enumerate(body.images or ())]
    options = sampling(body.options, body.logprobs, body.top_logprobs)
    if body.raw or body.suffix:
        if images and body.suffix:
            raise APIError(400, "images: images cannot go with a suffix (fill in the middle)")
        prompt = "".join(
            p.text if isinstance(p, Text) else IMAGE for p in with_images(body.prompt or "", images)
        )
        return PromptRequest(
            body.model,
            prompt,
            body.suffix or None,
            tuple(images),
            template=None if body.raw else body.template,
            format=fmt(body.format),
            sampling=options,
            truncate=body.truncate,
            shift=body.shift,
            keep_alive=body.keep_alive,
            stream=body.stream,
        )
    system = () if body.system is None else (Message("system", (Text(body.system),)),)
    user = Message("user", with_images(body.prompt or "", images))
    return ChatRequest(
        body.model,
        (*system, user),
        format=fmt(body.format),
        sampling=options,
        think=body.think,
        template=body.template or None,
        truncate=body.truncate,
        shift=body.shift,
        keep_alive=body.keep_alive,
        stream=body.stream,
    )
