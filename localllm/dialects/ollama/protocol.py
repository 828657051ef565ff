"""Ollama's request bodies (`/api/...`), validated by pydantic: a wrong type is a 400
naming the field, never a 500. Unknown fields are ignored, as Ollama ignores them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, ValidationInfo, field_validator

from localllm.dialects.wire import EmbedInput, Loose, Number, Tool
from localllm.inference.options import check_option


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
        if info.field_name is not None:
            check_option(info.field_name, value)  # ValueError: pydantic names the field
        return value


KeepAlive = StrictStr | Number | None
Think = StrictBool | Literal["low", "medium", "high"] | None
"""Ollama's `think`: on, off, or a level for templates that know levels."""
Format = Literal["", "json"] | dict[str, Any] | None


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
    thinking: StrictStr | None = None
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
    dimensions: StrictInt | None = Field(default=None, ge=1)
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
