"""The Responses API's request body (`POST /v1/responses`), validated by pydantic: a
wrong type or an unknown item type is a 400 naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictBool, StrictStr, Tag

from localllm.dialects.wire import Count, Loose, Number


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
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class HostedTool(Loose):
    """OpenAI's own tools (web search, file search, MCP, a custom grammar...): this
    server cannot run them, so they are left out (and named once in its log)."""

    type: StrictStr


class NamespaceTool(Loose):
    """A group of functions (Codex's sub-agents): its functions are offered as they are."""

    type: Literal["namespace"]
    name: StrictStr
    description: StrictStr | None = None
    tools: list[AnyTool] = Field(default_factory=list)


def _tool_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("function", "namespace") else "hosted"


AnyTool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[HostedTool, Tag("hosted")],
    Discriminator(_tool_type),
]


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
    tools: list[AnyTool] | None = None
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
