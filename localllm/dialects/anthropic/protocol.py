"""Anthropic's Messages API bodies (`/v1/messages`, `/v1/messages/count_tokens`),
validated by pydantic: a wrong type or an unknown block type is a 400 naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from localllm.dialects.wire import Count, Loose, Number


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
    role: Literal["user", "assistant", "system", "developer"]
    """Anthropic's API takes user and assistant; Claude Code also sends system messages
    in the conversation (its reminders), and they are taken as such."""
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
