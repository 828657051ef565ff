"""The one typed request every API dialect decodes into.

A dialect's codec (`localllm.dialects`) turns its wire body into a `ChatRequest` (a
conversation to answer), a `PromptRequest` (raw text to continue, or to fill in the
middle of) or an `EmbedRequest`, naming each value's place in its own body (`where`)
so that an error found later still points at the field the client sent. Everything
here is plain data: the recipe (`localllm.inference.recipe`) turns it into the
worker's request, the service (`localllm.inference.service`) runs it.

The vocabulary is Ollama's where one is needed (option names such as
`num_predict`, `think` levels), since every dialect maps onto it already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from localllm.engine.protocol import MARKER as IMAGE
from localllm.errors import APIError

__all__ = ["IMAGE"]  # where an image goes in a raw prompt: one marker per image

Role = Literal["system", "developer", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "developer", "user", "assistant", "tool")
Think = bool | Literal["low", "medium", "high"] | None
"""On, off, a level for templates that know levels, or None: the template's default."""
KeepAlive = str | float | int | None
"""Ollama's forms: seconds, a duration such as "5m", negative for ever, None: the default."""


def role(value: str, where: str) -> Role:
    """`value` as a role; APIError 400 naming `where` for one the core does not know."""
    for known in ROLES:
        if value == known:
            return known
    raise APIError(400, f"{where}: must be one of {', '.join(ROLES)}")


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ImageIn:
    """An image of the request, not yet decoded: its encoded bytes, or a URL (a `data:`
    URL, or http(s) where the operator allows fetching). `where` names it in the body."""

    where: str
    data: bytes | None = None
    url: str | None = None


Part = Text | ImageIn


@dataclass(frozen=True)
class CallIn:
    """A tool call of an earlier assistant turn, as the client sends it back."""

    name: str
    arguments: Mapping[str, Any]
    id: str = ""


@dataclass(frozen=True)
class Message:
    role: Role
    content: tuple[Part, ...] = ()
    thinking: str = ""
    """An earlier assistant turn's thinking (templates that show it get it)."""
    tool_calls: tuple[CallIn, ...] = ()
    tool_call_id: str = ""
    """A tool result's call."""
    name: str = ""
    """A tool result's tool (found from `tool_call_id` when the dialect has no name)."""

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, Text))


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None
    """A JSON schema of the arguments; None: any object."""


@dataclass(frozen=True)
class ToolChoice:
    mode: Literal["auto", "none", "required"] = "auto"
    name: str | None = None
    """Force this one tool (mode is then "required")."""
    where: str = "tool_choice"


@dataclass(frozen=True)
class Format:
    """A constraint on the answer's text: any JSON, or JSON matching `schema`."""

    schema: Mapping[str, Any] | None = None
    """None: any JSON value."""
    where: str = "format"


@dataclass(frozen=True)
class Sampling:
    """What the request asks of sampling, in Ollama's option names (`num_predict`,
    `stop`, `seed`...), and the dialect's defaults under them: the recipe merges
    defaults < the Modelfile's parameters < options."""

    options: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    logprobs: int = -1
    """-1: none; else the chosen token's and this many alternatives (0 to 20)."""


Lora = tuple[tuple[int, float], ...]
"""LoRA adapters for one request: (index among the model's ADAPTERs, scale); () none,
None the Modelfile's (llama-server's `lora` field)."""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    format: Format | None = None
    sampling: Sampling = field(default_factory=Sampling)
    think: Think = None
    """The client's explicit switch: asking a model that cannot think is a 400."""
    effort: str | None = None
    """A reasoning effort (none, minimal, low, medium, high, xhigh, max): a hint that
    sets the level only for a model that thinks; "none" switches thinking off."""
    template: str | None = None
    """A chat template that replaces the model's for this request (Ollama's)."""
    truncate: bool = False
    shift: bool = False
    keep_alive: KeepAlive = None
    stream: bool = False
    lora: Lora | None = None


@dataclass(frozen=True)
class PromptRequest:
    """Raw text to continue (no chat template), or with `suffix` to fill in between."""

    model: str
    prompt: str
    suffix: str | None = None
    images: tuple[ImageIn, ...] = ()
    """One marker (`IMAGE`) in `prompt` for each, in order."""
    template: str | None = None
    """For fill in the middle: a template with `.Suffix` (else the model's FIM tokens)."""
    format: Format | None = None
    sampling: Sampling = field(default_factory=Sampling)
    truncate: bool = False
    shift: bool = False
    keep_alive: KeepAlive = None
    stream: bool = False
    lora: Lora | None = None


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: tuple[str, ...]
    truncate: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    keep_alive: KeepAlive = None
    dimensions: int | None = None
    """Each vector cut to its first N values and normalised again (Ollama's and OpenAI's
    `dimensions`)."""


@dataclass(frozen=True)
class RerankRequest:
    """Documents ordered by how well each answers the query (`/v1/rerank`)."""

    model: str
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None
    truncate: bool = True
    keep_alive: KeepAlive = None
