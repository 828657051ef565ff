"""An Anthropic Messages body decoded into the core's chat request.

Anthropic's own rules: `system` is a string or text blocks; `tool_use` and `thinking`
blocks belong to the assistant, `tool_result` blocks to the user (each becomes a tool
message, before the user's text); images are base64 data or a URL; `thinking`
enabled or disabled is the explicit switch, `output_config.effort` a level.
"""

from __future__ import annotations

from collections.abc import Sequence

from localllm.dialects.anthropic.protocol import (
    Block,
    CountTokensBody,
    ImageBlock,
    MessagesBody,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from localllm.errors import APIError
from localllm.inference.images import decode_base64
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
    Think,
    Tool,
    ToolChoice,
)

BILLING = "x-anthropic-billing-header:"
"""Claude Code's first system block: metadata for Anthropic's billing, not a prompt. It
is left out, so that it neither costs tokens nor breaks the cached prefix."""


def _image(block: ImageBlock, where: str) -> ImageIn:
    """An image block: `source` base64 data, or a URL."""
    source = block.source
    kind = source.get("type")
    if kind == "base64":
        data = source.get("data")
        if not isinstance(data, str):
            raise APIError(400, f"{where}.source.data: the base64 image data is required")
        return ImageIn(where, decode_base64(data, f"{where}.source.data"))
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise APIError(400, f"{where}.source.url: the image URL is required")
        return ImageIn(f"{where}.source.url", url=url)
    raise APIError(400, f"{where}.source.type: {kind!r} is not taken (base64 or url)")


def _result(block: ToolResultBlock, where: str) -> tuple[Part, ...]:
    if isinstance(block.content, str):
        return (Text(block.content),)
    return tuple(
        Text(part.text) if isinstance(part, TextBlock) else _image(part, f"{where}.content.{k}")
        for k, part in enumerate(block.content)
    )


def _system_text(blocks: Sequence[Block], i: int) -> tuple[Part, ...]:
    for j, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise APIError(400, f"messages.{i}.content.{j}: a system message holds text blocks")
    return tuple(Text(b.text) for b in blocks if isinstance(b, TextBlock))


def _messages(body: CountTokensBody) -> tuple[Message, ...]:
    out: list[Message] = []
    if body.system:
        system = body.system
        texts = [system] if isinstance(system, str) else [b.text for b in system]
        text = "\n\n".join(t for t in texts if not t.startswith(BILLING))
        out.append(Message("system", (Text(text),)))
    for i, m in enumerate(body.messages):
        blocks = (
            [TextBlock(type="text", text=m.content)] if isinstance(m.content, str) else m.content
        )
        parts: list[Part] = []
        thinking: list[str] = []
        calls: list[CallIn] = []
        if m.role in ("system", "developer"):
            out.append(Message(m.role, _system_text(blocks, i)))
            continue
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            if isinstance(block, TextBlock):
                parts.append(Text(block.text))
            elif isinstance(block, ImageBlock):
                parts.append(_image(block, where))
            elif isinstance(block, ToolUseBlock | ThinkingBlock | RedactedThinkingBlock):
                if m.role != "assistant":
                    raise APIError(400, f"{where}: {block.type} blocks belong to the assistant")
                if isinstance(block, ToolUseBlock):
                    calls.append(CallIn(block.name, block.input, block.id))
                elif isinstance(block, ThinkingBlock):
                    thinking.append(block.thinking)
            else:
                if m.role != "user":
                    raise APIError(400, f"{where}: tool_result blocks belong to the user")
                out.append(Message("tool", _result(block, where), tool_call_id=block.tool_use_id))
        if parts or calls or not blocks or m.role == "assistant":
            out.append(Message(m.role, tuple(parts), "".join(thinking), tuple(calls)))
    return tuple(out)


def _choice(body: CountTokensBody) -> ToolChoice:
    choice = body.tool_choice
    if choice is None or choice.type == "auto":
        return ToolChoice("auto")
    if choice.type == "tool":
        return ToolChoice("required", choice.name or "", "tool_choice.name")
    return ToolChoice("none" if choice.type == "none" else "required")


def request(body: CountTokensBody) -> ChatRequest:
    """A count_tokens body (a prompt without sampling) or a Messages body."""
    kind = body.thinking.type if body.thinking else None
    think: Think = {"enabled": True, "disabled": False}.get(kind or "")
    output = body.output_config
    fmt = output.format if output else None
    options: dict[str, object] = {}
    stream = False
    if isinstance(body, MessagesBody):
        options = {
            "temperature": body.temperature,
            "top_p": body.top_p,
            "top_k": body.top_k,
            "num_predict": body.max_tokens,
            "stop": body.stop_sequences,
        }
        options = {k: v for k, v in options.items() if v is not None}
        stream = body.stream
    return ChatRequest(
        body.model,
        _messages(body),
        tools=tuple(Tool(t.name, t.description or "", t.input_schema) for t in body.tools or ()),
        tool_choice=_choice(body),
        format=Format(fmt.schema_, "output_config.format.schema") if fmt else None,
        sampling=Sampling(options, NO_REPEAT_PENALTY),
        think=think,
        effort=output.effort if output else None,
        stream=stream,
    )
