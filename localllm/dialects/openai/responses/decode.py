"""A Responses API body decoded into the core's chat request.

`instructions` is a system message; `input` is text, or items: messages (content
parts `input_text`, `output_text`, `refusal`, `input_image`), `function_call` and
`function_call_output`, earlier `reasoning` (accepted, not fed back). With
`previous_response_id`, the kept conversation of that response comes first
(`localllm.inference.conversations`); `item_reference` is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from localllm.dialects.openai.decode import arguments
from localllm.dialects.openai.responses.protocol import (
    AnyTool,
    FilePart,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    ImagePart,
    ItemReference,
    MessageItem,
    NamedFunction,
    NamespaceTool,
    ResponsesBody,
    TextPart,
)
from localllm.errors import APIError
from localllm.inference.options import NO_REPEAT_PENALTY
from localllm.inference.request import (
    CallIn,
    ChatRequest,
    Format,
    ImageIn,
    Message,
    Part,
    Sampling,
    Text,
    Tool,
    ToolChoice,
)


def _parts(content: str | list[Any], where: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (Text(content),)
    out: list[Part] = []
    for j, part in enumerate(content):
        if isinstance(part, FilePart):
            raise APIError(400, f"{where}.{j}: input_file parts are not taken here")
        if isinstance(part, ImagePart):
            if part.image_url is None:
                raise APIError(
                    400,
                    f"{where}.{j}.image_url: send the image as a data: URL "
                    "(this server keeps no files)",
                )
            out.append(ImageIn(f"{where}.{j}.image_url", url=part.image_url))
            continue
        out.append(Text(part.text if isinstance(part, TextPart) else part.refusal))
    return tuple(out)


def instructions(body: ResponsesBody) -> tuple[Message, ...]:
    """The request's `instructions`, which a continuation does not carry over."""
    return (Message("system", (Text(body.instructions),)),) if body.instructions else ()


def conversation(body: ResponsesBody, earlier: tuple[Message, ...] = ()) -> tuple[Message, ...]:
    """The conversation without the instructions: `earlier` (a kept response's), then
    this request's input."""
    out: list[Message] = list(earlier)
    items = (
        [MessageItem(role="user", content=body.input)]
        if isinstance(body.input, str)
        else body.input
    )
    for i, item in enumerate(items):
        where = f"input.{i}"
        if isinstance(item, MessageItem):
            out.append(Message(item.role, _parts(item.content, f"{where}.content")))
        elif isinstance(item, FunctionCallItem):
            call = CallIn(item.name, arguments(item.arguments, f"{where}.arguments"), item.call_id)
            if out and out[-1].role == "assistant" and not out[-1].tool_call_id:
                last = out.pop()
                out.append(
                    Message("assistant", last.content, last.thinking, (*last.tool_calls, call))
                )
            else:
                out.append(Message("assistant", tool_calls=(call,)))
        elif isinstance(item, FunctionCallOutputItem):
            content = _parts(item.output, f"{where}.output")
            out.append(Message("tool", content, tool_call_id=item.call_id))
        elif isinstance(item, ItemReference):
            raise APIError(
                400,
                f"{where}: item_reference is not taken here; send the item itself "
                "(or continue with previous_response_id)",
            )
    return tuple(out)


def _choice(body: ResponsesBody) -> ToolChoice:
    choice = body.tool_choice or "auto"
    if isinstance(choice, NamedFunction):
        return ToolChoice("required", choice.name, "tool_choice.name")
    return ToolChoice(choice)


def _format(body: ResponsesBody) -> Format | None:
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Format(None, "text.format")
    if fmt.schema_ is None:
        raise APIError(400, "text.format.schema: a json_schema format needs its schema")
    return Format(fmt.schema_, "text.format.schema")


log = logging.getLogger("localllm.server")
_SKIPPED: set[str] = set()


def functions(tools: Sequence[AnyTool], namespace: str = "") -> Iterator[tuple[FunctionTool, str]]:
    """Every function the request offers, with the namespace it came in ("" for none);
    hosted tools are left out, each type named once in the log."""
    for tool in tools:
        if isinstance(tool, FunctionTool):
            yield tool, namespace
        elif isinstance(tool, NamespaceTool):
            yield from functions(tool.tools, tool.name)
        elif tool.type not in _SKIPPED:
            _SKIPPED.add(tool.type)
            log.info("responses: tools of type %r are not run by this server; left out", tool.type)


def request(body: ResponsesBody, earlier: tuple[Message, ...] = ()) -> ChatRequest:
    """The chat `body` asks for; `earlier`: the conversation of `previous_response_id`."""
    if body.background:
        raise APIError(400, "background: responses run in the foreground here; leave it out")
    options = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "num_predict": body.max_output_tokens,
    }
    return ChatRequest(
        body.model,
        instructions(body) + conversation(body, earlier),
        tools=tuple(
            Tool(t.name, t.description or "", t.parameters) for t, _ in functions(body.tools or ())
        ),
        tool_choice=_choice(body),
        format=_format(body),
        sampling=Sampling({k: v for k, v in options.items() if v is not None}, NO_REPEAT_PENALTY),
        effort=body.reasoning.effort if body.reasoning else None,
        truncate=body.truncation == "auto",
        stream=body.stream,
    )
