"""OpenAI Chat Completions and Completions bodies decoded into the core's requests.

OpenAI's own rules: `developer` is a system message; content parts are text and
`image_url` (a data: URL, or http(s) where allowed); tool call arguments are JSON
text; `max_completion_tokens` wins over `max_tokens`; no repeat penalty by default.
"""

from __future__ import annotations

import json
from typing import Any

from localllm.dialects.logprobs import requested
from localllm.dialects.openai.protocol import (
    ChatCompletionBody,
    CompletionBody,
    NamedToolChoice,
    OpenAIMessage,
    OpenAISampling,
)
from localllm.errors import APIError
from localllm.inference.options import NO_REPEAT_PENALTY
from localllm.inference.request import (
    CallIn,
    ChatRequest,
    Format,
    ImageIn,
    Lora,
    Message,
    Part,
    PromptRequest,
    Sampling,
    Text,
    Tool,
    ToolChoice,
    role,
)


def options(body: OpenAISampling, max_tokens: int | None) -> dict[str, Any]:
    """The body's sampling fields in the core's option names."""
    out: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "presence_penalty": body.presence_penalty,
        "frequency_penalty": body.frequency_penalty,
        "num_predict": max_tokens,
        "ignore_eos": body.ignore_eos,
    }
    if body.stop is not None:
        out["stop"] = [body.stop] if isinstance(body.stop, str) else body.stop
    return {k: v for k, v in out.items() if v is not None}


def arguments(text: str, where: str) -> dict[str, Any]:
    """Tool call arguments, JSON text of an object."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise APIError(400, f"{where}: tool call arguments are not JSON: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise APIError(400, f"{where}: tool call arguments must be a JSON object")
    return value


def _content(message: OpenAIMessage, where: str) -> tuple[Part, ...]:
    if message.content is None:
        return ()
    if isinstance(message.content, str):
        return (Text(message.content),)
    parts: list[Part] = []
    for i, part in enumerate(message.content):
        if part.type == "image_url" and part.image_url is not None:
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            parts.append(ImageIn(f"{where}.content.{i}.image_url", url=url))
        elif part.type == "text":
            parts.append(Text(part.text or ""))
        else:
            raise APIError(
                400,
                f"{where}.content.{i}.type: parts of type {part.type!r} are "
                "not supported (text, image_url)",
            )
    return tuple(parts)


def _message(m: OpenAIMessage, n: int) -> Message:
    where = f"messages.{n}"
    calls = tuple(
        CallIn(
            c.function.name, arguments(c.function.arguments, f"{where}.tool_calls.{i}"), c.id or ""
        )
        for i, c in enumerate(m.tool_calls or ())
    )
    return Message(
        role(m.role, f"{where}.role"),
        _content(m, where),
        tool_calls=calls,
        tool_call_id=m.tool_call_id or "",
        name=m.name or "",
    )


def _choice(body: ChatCompletionBody) -> ToolChoice:
    choice = body.tool_choice or "auto"
    if isinstance(choice, NamedToolChoice):
        return ToolChoice("required", choice.function.name, "tool_choice.function.name")
    return ToolChoice(choice)


def _format(body: ChatCompletionBody) -> Format | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Format(None, "response_format")
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise APIError(
            400, "response_format.json_schema.schema: a json_schema format needs its schema"
        )
    return Format(fmt.json_schema.schema_, "response_format.json_schema.schema")


def chat(body: ChatCompletionBody) -> ChatRequest:
    limit = body.max_completion_tokens or body.max_tokens
    return ChatRequest(
        body.model,
        tuple(_message(m, n) for n, m in enumerate(body.messages)),
        tools=tuple(
            Tool(t.function.name, t.function.description or "", t.function.parameters)
            for t in body.tools or ()
        ),
        tool_choice=_choice(body),
        format=_format(body),
        sampling=Sampling(
            options(body, limit), NO_REPEAT_PENALTY, requested(body.logprobs, body.top_logprobs)
        ),
        effort=body.reasoning_effort,
        stream=body.stream,
        lora=lora(body),
    )


def completion(body: CompletionBody) -> PromptRequest:
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(400, "prompt: send one prompt per request")
    logprobs = -1 if body.logprobs is None else body.logprobs
    sampling = Sampling(options(body, body.max_tokens), NO_REPEAT_PENALTY, logprobs)
    return PromptRequest(
        body.model, prompts[0], body.suffix or None, sampling=sampling, stream=body.stream,
        lora=lora(body),
    )  # fmt: skip


def lora(body: OpenAISampling) -> Lora | None:
    """llama-server's `lora`: [{"id": 0, "scale": 0.5}], the adapters of this request."""
    if body.lora is None:
        return None
    return tuple((entry.id, float(entry.scale)) for entry in body.lora)
