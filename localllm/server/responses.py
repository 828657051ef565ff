"""OpenAI's Responses API (`POST /v1/responses`), stateless, for the agents and CLIs
written for it.

A thin layer over the one inference path: `instructions` and `input` (text, or
message, `function_call` and `function_call_output` items) become the internal
chat request, the parsed reply (`localllm.server.replies`) becomes output items
(`reasoning`, `message`, `function_call`), streamed as OpenAI's semantic events.
Nothing is stored: `previous_response_id` (and `item_reference`) are refused with
a message saying to send the whole conversation. Errors have OpenAI's shape (the
`/v1` paths' `{"error": {...}}`); an unknown item or part type is a 400 naming it.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictBool, StrictStr, Tag
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localllm.engine.protocol import Generate
from localllm.server.errors import APIError, parse
from localllm.server.images import Collected
from localllm.server.inference import NO_REPEAT_PENALTY, Inference, chain
from localllm.server.responses_stream import call_item, finished, message_item, new_id, stream
from localllm.server.schemas import Count, Loose, Number
from localllm.server.state import state
from localllm.server.thinking import Think, thinking_for
from localllm.store.manifests import Manifest

EFFORTS: dict[str | None, Think] = {
    None: None, "none": False, "minimal": "low", "low": "low", "medium": "medium",
    "high": "high", "xhigh": "high",
}  # fmt: skip


class TextPart(Loose):
    type: Literal["input_text", "output_text"]
    text: StrictStr


class RefusalPart(Loose):
    type: Literal["refusal"]
    refusal: StrictStr


class ImagePart(Loose):
    type: Literal["input_image"]
    image_url: StrictStr | None = None
    """A data: URL (or, where the server allows it, an http(s) one)."""
    file_id: StrictStr | None = None


class FilePart(Loose):
    type: Literal["input_file"]


Part = Annotated[TextPart | RefusalPart | ImagePart | FilePart, Field(discriminator="type")]


class MessageItem(Loose):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: StrictStr | list[Part]


class FunctionCallItem(Loose):
    type: Literal["function_call"]
    call_id: StrictStr
    name: StrictStr
    arguments: StrictStr


class FunctionCallOutputItem(Loose):
    type: Literal["function_call_output"]
    call_id: StrictStr
    output: StrictStr | list[Part]


class ReasoningItem(Loose):
    """An earlier turn's reasoning: accepted, not fed back (templates drop it too)."""

    type: Literal["reasoning"]


class ItemReference(Loose):
    type: Literal["item_reference"]
    id: StrictStr


def _item_type(value: Any) -> str:
    """Items without a `type` are messages (OpenAI's "easy input message")."""
    return str(value.get("type", "message")) if isinstance(value, dict) else "message"


Item = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(_item_type),
]


class FunctionTool(Loose):
    type: Literal["function"]
    """Only functions: OpenAI's hosted tools (web search, files...) are refused."""
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class NamedFunction(Loose):
    type: Literal["function"]
    name: StrictStr


class TextFormat(Loose):
    type: Literal["text", "json_object", "json_schema"]
    name: StrictStr | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class TextConfig(Loose):
    format: TextFormat | None = None


class ReasoningConfig(Loose):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


class ResponsesBody(Loose):
    model: StrictStr
    input: StrictStr | list[Item]
    instructions: StrictStr | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunction | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: Count | None = Field(default=None, ge=1)
    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, ge=0, le=1)
    stream: StrictBool = False
    previous_response_id: StrictStr | None = None
    store: StrictBool | None = None
    background: StrictBool | None = None
    truncation: Literal["auto", "disabled"] | None = None
    metadata: dict[str, StrictStr] | None = None
    parallel_tool_calls: StrictBool | None = None


def _text(content: str | list[Any], where: str, images: Collected) -> str:
    if isinstance(content, str):
        return content
    out = []
    for j, part in enumerate(content):
        if isinstance(part, FilePart):
            raise APIError(400, f"{where}.{j}: input_file parts are not taken here")
        if isinstance(part, ImagePart):
            if part.image_url is None:
                raise APIError(400, f"{where}.{j}.image_url: send the image as a data: URL "
                               "(this server keeps no files)")  # fmt: skip
            out.append(images.add(None, f"{where}.{j}.image_url", part.image_url))
            continue
        out.append(part.text if isinstance(part, TextPart) else part.refusal)
    return "".join(out)


def _messages(body: ResponsesBody, images: Collected) -> list[dict[str, Any]]:
    """The conversation as internal chat messages."""
    out: list[dict[str, Any]] = []
    if body.instructions:
        out.append({"role": "system", "content": body.instructions})
    items = (
        [MessageItem(role="user", content=body.input)]
        if isinstance(body.input, str)
        else body.input
    )
    names: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"input.{i}"
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            out.append({"role": role, "content": _text(item.content, f"{where}.content", images)})
        elif isinstance(item, FunctionCallItem):
            try:
                arguments = json.loads(item.arguments or "{}")
            except ValueError:
                raise APIError(
                    400, f"{where}.arguments: not JSON: {item.arguments[:80]!r}"
                ) from None
            names[item.call_id] = item.name
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": arguments}}  # fmt: skip
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            text = _text(item.output, f"{where}.output", images)
            name = names.get(item.call_id, "")
            out.append(
                {"role": "tool", "content": text, "tool_call_id": item.call_id, "name": name}
            )
        elif isinstance(item, ItemReference):
            raise APIError(400, f"{where}: item_reference needs stored responses, and this "
                           "server keeps none; send the item itself")  # fmt: skip
    return out


def _tools(body: ResponsesBody) -> tuple[tuple[dict[str, Any], ...], str]:
    from localllm.constraints.grammar import schema_grammar

    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(body.tools or ()):
        function: dict[str, Any] = {
            "name": tool.name,
            "parameters": tool.parameters or {"type": "object"},
        }
        if tool.parameters is not None:
            schema_grammar(tool.parameters, f"tools[{i}].parameters")
        if tool.description:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    choice = body.tool_choice or "auto"
    if isinstance(choice, NamedFunction):
        tools = [t for t in tools if t["function"]["name"] == choice.name]
        if not tools:
            raise APIError(400, f"tool_choice.name: {choice.name!r} is not in tools")
        choice = "required"
    if choice == "required" and not tools:
        raise APIError(400, 'tool_choice: "required" needs tools')
    return tuple(tools), choice


def _grammar(body: ResponsesBody) -> str | None:
    from localllm.constraints.grammar import json_grammar, schema_grammar

    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_grammar()
    if fmt.schema_ is None:
        raise APIError(400, "text.format.schema: a json_schema format needs its schema")
    return schema_grammar(fmt.schema_, "text.format.schema")


async def _request(
    inference: Inference, manifest: Manifest, body: ResponsesBody, image_urls: bool
) -> tuple[Generate, Any, dict[str, Any]]:
    if body.previous_response_id:
        raise APIError(400, "previous_response_id: this server keeps no responses; send the "
                       "whole conversation in input")  # fmt: skip
    if body.background:
        raise APIError(400, "background: responses run in the foreground here; leave it out")
    requested = {"temperature": body.temperature, "top_p": body.top_p,
                 "num_predict": body.max_output_tokens}  # fmt: skip
    options = inference.options(manifest, {k: v for k, v in requested.items() if v is not None},
                                NO_REPEAT_PENALTY)  # fmt: skip
    template = manifest.template or inference.chat_template(manifest)
    effort = body.reasoning.effort if body.reasoning else None
    mode = thinking_for(EFFORTS[effort], template, manifest.name)
    tools, choice = _tools(body)
    images = Collected(manifest.name, manifest.projector is not None, image_urls)
    messages = _messages(body, images)
    gen = inference.chat(
        manifest, messages, mode, tools=tools, tool_choice=choice,
        sampling=inference.sampling(options), grammar=_grammar(body),
        truncate=body.truncation == "auto", images=await images.images(),
    )  # fmt: skip
    return gen, mode, options


async def responses(request: Request) -> Response:
    body = await parse(request, ResponsesBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    image_urls = state(request).settings.image_urls
    gen, mode, options = await _request(inference, manifest, body, image_urls)
    started = await inference.start(manifest, gen, options, inference.keep_alive(None), mode)
    base = {
        "id": new_id("resp"), "object": "response", "created_at": int(time.time()),
        "model": body.model, "status": "in_progress", "output": [], "error": None,
        "incomplete_details": None, "instructions": body.instructions,
        "tools": [t.model_dump(exclude_none=True) for t in body.tools or ()],
        "tool_choice": body.tool_choice if isinstance(body.tool_choice, str) else
        (body.tool_choice.model_dump() if body.tool_choice else "auto"),
        "parallel_tool_calls": True, "temperature": body.temperature, "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens, "previous_response_id": None,
        "reasoning": {"effort": body.reasoning.effort if body.reasoning else None},
        "text": {"format": {"type": "text"}}, "truncation": body.truncation or "disabled",
        "store": False, "metadata": body.metadata or {}, "usage": None,
    }  # fmt: skip
    if body.stream:
        return stream(base, chain(started))
    _, done = await inference.complete(started)
    output: list[dict[str, Any]] = []
    if done.thinking:
        output.append({"type": "reasoning", "id": new_id("rs"), "summary": [],
                       "content": [{"type": "reasoning_text", "text": done.thinking}]})  # fmt: skip
    if done.content or not done.tool_calls:
        output.append(message_item(done.content, "completed"))
    output += [call_item(c) for c in done.tool_calls]
    return JSONResponse(finished(base, output, done))


ROUTES = [Route("/v1/responses", responses, methods=["POST"])]
