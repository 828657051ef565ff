"""The request bodies of both APIs, validated by pydantic: a wrong type is a 400
naming the field, never a 500. Unknown fields are ignored, as Ollama and
OpenAI ignore them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)
from pydantic import Strict as _Strict

from localllm.store.modelfile import INT32

Number = StrictInt | Annotated[float, _Strict(), AllowInfNan(False)]
"""A JSON number, finite (no NaN or Infinity, which Python's JSON would let through)."""
Count = Annotated[StrictInt, Field(le=INT32)]
Stop = Annotated[StrictStr, Field(max_length=1024)]
Stops = Annotated[list[Stop], Field(max_length=64)] | Stop


def _not_empty(text: str) -> str:
    if not text:
        raise ValueError("an empty string has no embedding")
    return text


EmbedText = Annotated[StrictStr, AfterValidator(_not_empty)]
EmbedInput = EmbedText | Annotated[list[EmbedText], Field(min_length=1)]
"""What to embed: a string or a list of them, none empty (400 naming the index)."""


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Options(Loose):
    """Ollama's `options` (and Modelfile PARAMETERs) that localllm applies: the types
    here, the bounds by the Modelfile's own rules (`store.modelfile.PARAMETERS`), so a
    value a Modelfile line could not hold is refused here too."""

    num_ctx: StrictInt | None = Field(default=None, ge=256)
    num_predict: StrictInt | None = None
    num_gpu: StrictInt | None = Field(default=None, ge=0)
    num_thread: StrictInt | None = Field(default=None, ge=1)
    num_batch: StrictInt | None = None
    temperature: Number | None = None
    top_k: StrictInt | None = None
    top_p: Number | None = None
    min_p: Number | None = None
    typical_p: Number | None = None
    repeat_penalty: Number | None = None
    repeat_last_n: StrictInt | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    seed: StrictInt | None = None
    stop: list[StrictStr] | StrictStr | None = None
    ignore_eos: StrictBool | None = None
    prompt_lookup: StrictBool | None = None
    """localllm's: guess greedy answers ahead from the text (default on)."""
    draft_max: StrictInt | None = None
    """localllm's: the most tokens guessed per pass (0: no speculation)."""

    @field_validator("*")
    @classmethod
    def _bounds(cls, value: Any, info: ValidationInfo) -> Any:
        from localllm.store.modelfile import PARAMETERS, parameter_value

        name = info.field_name
        if value is None or name is None or name not in PARAMETERS:
            return value
        parameter_value(name, value)  # ValueError: pydantic names the field
        return value


KeepAlive = StrictStr | Number | None
Think = StrictBool | Literal["low", "medium", "high"] | None
"""Ollama's `think`: on, off, or a level for templates that know levels."""
Format = Literal["", "json"] | dict[str, Any] | None


class ToolFunction(Loose):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class Tool(Loose):
    type: Literal["function"] = "function"
    function: ToolFunction


class OllamaToolCall(Loose):
    class Function(Loose):
        name: StrictStr
        arguments: dict[str, Any] | StrictStr = Field(default_factory=dict)

    function: Function


class OllamaMessage(Loose):
    role: StrictStr
    content: StrictStr | None = ""
    images: list[StrictStr] | None = None
    """Base64-encoded image files."""
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: StrictStr | None = None


class OllamaGeneration(Loose):
    """What `/api/generate` and `/api/chat` both take."""

    model: StrictStr
    format: Format = None
    options: Options = Options()
    stream: StrictBool = True
    keep_alive: KeepAlive = None
    truncate: StrictBool = False
    shift: StrictBool = False
    """Ollama's: shift the context when the answer reaches its end (default false here:
    an answer that ran out of context ends with done_reason "length", never silently
    forgets its prompt)."""
    think: Think = None
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)


class GenerateBody(OllamaGeneration):
    prompt: StrictStr | None = ""
    suffix: StrictStr | None = None
    system: StrictStr | None = None
    template: StrictStr | None = None
    raw: StrictBool = False
    images: list[StrictStr] | None = None
    """Base64-encoded image files."""


class ChatBody(OllamaGeneration):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[Tool] | None = None


class EmbedBody(Loose):
    model: StrictStr
    input: EmbedInput
    truncate: StrictBool = True
    options: Options = Options()
    keep_alive: KeepAlive = None


class LegacyEmbeddingsBody(Loose):
    model: StrictStr
    prompt: StrictStr
    options: Options = Options()
    keep_alive: KeepAlive = None


class NameBody(Loose):
    """show / delete / pull: `model`, or Ollama's older `name`."""

    model: StrictStr | None = None
    name: StrictStr | None = None
    stream: StrictBool = True
    verbose: StrictBool = False

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class ShowBody(NameBody):
    """`/api/show`: Ollama's older `system`, `template` and `options` are shown as the
    model would run with them, checked as a Modelfile's lines are."""

    system: StrictStr | None = None
    template: StrictStr | None = None
    options: Options = Options()


class CopyBody(Loose):
    source: StrictStr
    destination: StrictStr


class CreateBody(Loose):
    model: StrictStr | None = None
    name: StrictStr | None = None
    from_: StrictStr | None = Field(default=None, alias="from")
    modelfile: StrictStr | None = None
    template: StrictStr | None = None
    system: StrictStr | None = None
    license: StrictStr | list[StrictStr] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[OllamaMessage] | None = None
    quantize: StrictStr | None = None
    files: dict[StrictStr, StrictStr] | None = None
    """File name -> the digest of a blob uploaded to /api/blobs (Ollama's create)."""
    adapters: dict[StrictStr, StrictStr] | None = None
    """LoRA adapters the same way."""
    stream: StrictBool = True


# --- OpenAI ------------------------------------------------------------------------


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
