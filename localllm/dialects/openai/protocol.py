"""OpenAI's request bodies (`/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`), validated by pydantic: a wrong type is a 400 naming the field.
Unknown fields are ignored, as OpenAI ignores them. (The Responses API's are in
`localllm.dialects.openai.responses_protocol`.)"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from localllm.dialects.wire import Count, EmbedInput, Loose, Number, Stops, Tool


class ImageURL(Loose):
    url: StrictStr
    detail: StrictStr | None = None


class ContentPart(Loose):
    type: StrictStr
    text: StrictStr | None = None
    image_url: ImageURL | StrictStr | None = None


class OpenAIToolCall(Loose):
    class Function(Loose):
        name: StrictStr
        arguments: StrictStr = "{}"

    id: StrictStr | None = None
    type: Literal["function"] = "function"
    function: Function


class OpenAIMessage(Loose):
    role: StrictStr
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    tool_call_id: StrictStr | None = None


class ResponseFormat(Loose):
    class JsonSchema(Loose):
        name: StrictStr | None = None
        schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None


class NamedToolChoice(Loose):
    class Function(Loose):
        name: StrictStr

    type: Literal["function"] = "function"
    function: Function


class StreamOptions(Loose):
    include_usage: StrictBool = False


class LoraEntry(Loose):
    id: StrictInt = Field(ge=0)
    scale: Number = 1.0


class OpenAISampling(Loose):
    model: StrictStr
    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, ge=0, le=1)
    max_tokens: Count | None = Field(default=None, ge=1)
    stop: Stops | None = None
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    presence_penalty: Number | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(default=None, ge=-2, le=2)
    ignore_eos: StrictBool | None = None
    """Not OpenAI's: llama-server's, for benchmarks that need exact lengths."""
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = Field(default=1, ge=1, le=1)
    lora: list[LoraEntry] | None = Field(default=None, max_length=64)
    """Not OpenAI's: llama-server's LoRA adapters for this request (index and scale)."""


class ChatCompletionBody(OpenAISampling):
    messages: list[OpenAIMessage] = Field(min_length=1)
    max_completion_tokens: Count | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    """OpenAI's; "none" switches thinking off, "minimal" counts as "low"."""


class CompletionBody(OpenAISampling):
    prompt: StrictStr | list[StrictStr]
    max_tokens: Count | None = Field(default=16, ge=1)
    """OpenAI's default for completions is 16 tokens."""
    logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    """The legacy form: how many alternatives per token (OpenAI allows 5, we 20)."""
    suffix: StrictStr | None = None
    """Text after the insertion point (fill-in-the-middle)."""


class EmbeddingsBody(Loose):
    model: StrictStr
    input: EmbedInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(default=None, ge=1)


MAX_DOCUMENTS = 1000
"""The most documents one rerank request scores (Cohere's limit): each is a decode."""


class RerankDocument(Loose):
    text: StrictStr


class RerankBody(Loose):
    """llama-server's, Jina's and Cohere's rerank request."""

    model: StrictStr
    query: StrictStr
    documents: list[StrictStr | RerankDocument] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: StrictInt | None = Field(default=None, ge=1)
    return_documents: StrictBool = False
