"""Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`), so coding
agents and apps written for Claude run on local models.

A thin layer over the one inference path: a request becomes the same internal
`Generate` as a chat (system, messages with `tool_use` and `tool_result` blocks as
tool calls and tool messages, `tools` and `tool_choice`, `thinking`), and the parsed
reply (`localllm.server.replies`) becomes content blocks: `thinking`, `text`,
`tool_use`. Streams are Anthropic's named SSE events. Errors have Anthropic's shape
(`localllm.server.errors`); a block type it does not know is a 400 naming the field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from localllm.engine.protocol import Done, Generate, Piece, ToolCall
from localllm.formats import thinks
from localllm.server.errors import APIError, error_body, message_of, parse
from localllm.server.images import Collected, decode_base64
from localllm.server.inference import NO_REPEAT_PENALTY, Inference, chain
from localllm.server.schemas import Count, Loose, Number
from localllm.server.state import state
from localllm.server.thinking import Think, Thinking, thinking_for
from localllm.store.manifests import Manifest

STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}
EFFORTS: dict[str, Think] = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high",
                             "max": "high"}  # fmt: skip


class TextBlock(Loose):
    type: Literal["text"]
    text: StrictStr


class ImageBlock(Loose):
    type: Literal["image"]
    source: dict[str, Any]


class ToolUseBlock(Loose):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]


class ToolResultBlock(Loose):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] = ""
    is_error: StrictBool = False


class ThinkingBlock(Loose):
    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr = ""


class RedactedThinkingBlock(Loose):
    type: Literal["redacted_thinking"]
    data: StrictStr


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageIn(Loose):
    role: Literal["user", "assistant"]
    content: StrictStr | list[Block]


class ToolIn(Loose):
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    """Anthropic's own server tools (web search...) have other types: refused."""


class ToolChoiceIn(Loose):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool | None = None


class ThinkingIn(Loose):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    """enabled / disabled reach the template as `think`; adaptive and between_tools
    leave it to the model (its template's default)."""
    budget_tokens: Count | None = Field(default=None, ge=0)


class FormatIn(Loose):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfigIn(Loose):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    """The thinking level, for templates that know levels (xhigh and max: high)."""
    format: FormatIn | None = None


class CountTokensBody(Loose):
    model: StrictStr
    messages: list[MessageIn] = Field(min_length=1)
    system: StrictStr | list[TextBlock] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingIn | None = None
    output_config: OutputConfigIn | None = None


class MessagesBody(CountTokensBody):
    max_tokens: Count = Field(ge=1)
    stop_sequences: list[StrictStr] | None = Field(default=None, max_length=64)
    stream: StrictBool = False
    temperature: Number | None = Field(default=None, ge=0, le=1)
    """Older clients send the sampling fields; today's leave them to the model."""
    top_p: Number | None = Field(default=None, ge=0, le=1)
    top_k: StrictInt | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None


def _messages(body: CountTokensBody, images: Collected) -> list[dict[str, Any]]:
    """The conversation as internal chat messages: `tool_use` blocks become the
    assistant's tool calls, `tool_result` blocks tool messages (before the user's text)."""
    out: list[dict[str, Any]] = []
    if body.system:
        system = body.system
        out.append({"role": "system", "content": system if isinstance(system, str)
                    else "\n\n".join(b.text for b in system)})  # fmt: skip
    names: dict[str, str] = {}
    for i, m in enumerate(body.messages):
        blocks = (
            [TextBlock(type="text", text=m.content)] if isinstance(m.content, str) else m.content
        )
        text: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            if isinstance(block, TextBlock):
                text.append(block.text)
            elif isinstance(block, ImageBlock):
                text.append(_image(block, where, images))
            elif isinstance(block, ToolUseBlock | ThinkingBlock | RedactedThinkingBlock):
                if m.role != "assistant":
                    raise APIError(400, f"{where}: {block.type} blocks belong to the assistant")
                if isinstance(block, ToolUseBlock):
                    names[block.id] = block.name
                    function = {"name": block.name, "arguments": block.input}
                    calls.append({"id": block.id, "type": "function", "function": function})
                elif isinstance(block, ThinkingBlock):
                    thinking.append(block.thinking)
            else:
                if m.role != "user":
                    raise APIError(400, f"{where}: tool_result blocks belong to the user")
                out.append({"role": "tool", "content": _result_text(block, where, images),
                            "tool_call_id": block.tool_use_id,
                            "name": names.get(block.tool_use_id, "")})  # fmt: skip
        if text or calls or not blocks or m.role == "assistant":
            message: dict[str, Any] = {"role": m.role, "content": "".join(text)}
            if calls:
                message["tool_calls"] = calls
            if thinking:
                message["thinking"] = "".join(thinking)
            out.append(message)
    return out


def _result_text(block: ToolResultBlock, where: str, images: Collected) -> str:
    if isinstance(block.content, str):
        return block.content
    return "".join(
        part.text if isinstance(part, TextBlock) else _image(part, f"{where}.content.{k}", images)
        for k, part in enumerate(block.content)
    )


def _image(block: ImageBlock, where: str, images: Collected) -> str:
    """The marker of an image block (`source`: base64 data, or a URL)."""
    source = block.source
    kind = source.get("type")
    if kind == "base64":
        data = source.get("data")
        if not isinstance(data, str):
            raise APIError(400, f"{where}.source.data: the base64 image data is required")
        return images.add(decode_base64(data, f"{where}.source.data"), where)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise APIError(400, f"{where}.source.url: the image URL is required")
        return images.add(None, f"{where}.source.url", url)
    raise APIError(400, f"{where}.source.type: {kind!r} is not taken (base64 or url)")


def _tools(body: CountTokensBody) -> tuple[tuple[dict[str, Any], ...], str]:
    """(the tools in the internal shape, tool_choice as auto | none | required)."""
    from localllm.constraints.grammar import schema_grammar

    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(body.tools or ()):
        schema_grammar(tool.input_schema, f"tools[{i}].input_schema")
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    choice = body.tool_choice
    if choice is None or choice.type == "auto":
        return tuple(tools), "auto"
    if not tools and choice.type != "none":
        raise APIError(400, f"tool_choice: {choice.type!r} needs tools")
    if choice.type == "tool":
        tools = [t for t in tools if t["function"]["name"] == choice.name]
        if not tools:
            raise APIError(400, f"tool_choice.name: {choice.name!r} is not in tools")
    return tuple(tools), {"none": "none", "any": "required", "tool": "required"}[choice.type]


async def _request(
    inference: Inference,
    manifest: Manifest,
    body: CountTokensBody,
    options: dict[str, Any],
    image_urls: bool,
) -> tuple[Generate, Thinking]:
    from localllm.constraints.grammar import schema_grammar

    kind = body.thinking.type if body.thinking else None
    think: Think = {"enabled": True, "disabled": False}.get(kind or "")
    output = body.output_config or OutputConfigIn()
    template = manifest.template or inference.chat_template(manifest)
    if output.effort and think is not False and thinks(template):
        # Effort is about more than thinking: a model that cannot think just answers.
        think = EFFORTS[output.effort]
    mode = thinking_for(think, template, manifest.name)
    fmt = output.format
    grammar = schema_grammar(fmt.schema_, "output_config.format.schema") if fmt else None
    tools, choice = _tools(body)
    images = Collected(manifest.name, manifest.projector is not None, image_urls)
    messages = _messages(body, images)
    gen = inference.chat(
        manifest, messages, mode, tools=tools, tool_choice=choice,
        sampling=inference.sampling(options), grammar=grammar, images=await images.images(),
    )  # fmt: skip
    return gen, mode


def _options(body: MessagesBody) -> dict[str, Any]:
    options = {"temperature": body.temperature, "top_p": body.top_p, "top_k": body.top_k,
               "num_predict": body.max_tokens, "stop": body.stop_sequences}  # fmt: skip
    return {k: v for k, v in options.items() if v is not None}


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": call.name,
            "input": call.arguments}  # fmt: skip


def _stop(done: Done) -> dict[str, Any]:
    reason = STOP_REASONS.get(done.reason, "stop_sequence" if done.stop_sequence else "end_turn")
    return {"stop_reason": reason, "stop_sequence": done.stop_sequence or None}


def _usage(done: Done) -> dict[str, Any]:
    """Anthropic counts prompt tokens read from the cache apart from `input_tokens`."""
    return {"input_tokens": done.prompt_tokens - done.cached_tokens,
            "cache_read_input_tokens": done.cached_tokens, "cache_creation_input_tokens": 0,
            "output_tokens": done.eval_tokens}  # fmt: skip


async def messages(request: Request) -> Response:
    body = await parse(request, MessagesBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, _options(body), NO_REPEAT_PENALTY)
    gen, mode = await _request(inference, manifest, body, options, _urls(request))
    started = await inference.start(manifest, gen, options, inference.keep_alive(None), mode)
    head = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": body.model}  # fmt: skip
    if not body.stream:
        _, done = await inference.complete(started)
        content: list[dict[str, Any]] = []
        if done.thinking:
            content.append({"type": "thinking", "thinking": done.thinking, "signature": ""})
        if done.content or not done.tool_calls:
            content.append({"type": "text", "text": done.content})
        content += [_tool_use(c) for c in done.tool_calls]
        return JSONResponse({**head, "content": content, **_stop(done), "usage": _usage(done)})
    return _stream(head, chain(started))


def _stream(head: dict[str, Any], events: AsyncIterator[Piece | Done]) -> StreamingResponse:
    """Anthropic's events: message_start, then for each block content_block_start,
    its deltas, content_block_stop; message_delta (stop reason, usage), message_stop."""

    async def sse() -> AsyncIterator[bytes]:
        def event(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        index, kind = -1, ""  # the open block

        def open_block(new: str, block: dict[str, Any]) -> list[bytes]:
            nonlocal index, kind
            out = close_block()
            index, kind = index + 1, new
            return [*out, event("content_block_start", {"index": index, "content_block": block})]

        def close_block() -> list[bytes]:
            nonlocal kind
            if not kind:
                return []
            out = []
            if kind == "thinking":
                delta = {"type": "signature_delta", "signature": ""}
                out.append(event("content_block_delta", {"index": index, "delta": delta}))
            kind = ""
            return [*out, event("content_block_stop", {"index": index})]

        message = {**head, "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}  # fmt: skip
        yield event("message_start", {"message": message})
        try:
            async for item in events:
                if isinstance(item, Done):
                    if index < 0:  # an empty answer is one empty text block
                        for chunk in open_block("text", {"type": "text", "text": ""}):
                            yield chunk
                    for chunk in close_block():
                        yield chunk
                    yield event("message_delta", {"delta": _stop(item), "usage": _usage(item)})
                    yield event("message_stop", {})
                    return
                parts = (("thinking", item.thinking), ("text", item.text))
                for part, text in parts:
                    if not text:
                        continue
                    if kind != part:
                        for chunk in open_block(part, {"type": part, part: ""}):
                            yield chunk
                    delta = {"type": f"{part}_delta", part: text}
                    yield event("content_block_delta", {"index": index, "delta": delta})
                for call in item.calls:
                    block = _tool_use(call)
                    for chunk in open_block("tool_use", {**block, "input": {}}):
                        yield chunk
                    delta = {"type": "input_json_delta", "partial_json": json.dumps(call.arguments)}
                    yield event("content_block_delta", {"index": index, "delta": delta})
                    for chunk in close_block():
                        yield chunk
        except Exception as exc:  # after the 200: the error goes in the stream
            error = error_body("/v1/messages", 500, message_of(exc))
            yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()

    return StreamingResponse(sse(), media_type="text/event-stream")


async def count_tokens(request: Request) -> Response:
    """The prompt's tokens, counted by the model's worker with the template a
    request renders with."""
    body = await parse(request, CountTokensBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, {}, NO_REPEAT_PENALTY)
    gen, _ = await _request(inference, manifest, body, options, _urls(request))
    _, tokens = await inference.render(manifest, gen, options)
    return JSONResponse({"input_tokens": tokens})


def _urls(request: Request) -> bool:
    return state(request).settings.image_urls


ROUTES = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
