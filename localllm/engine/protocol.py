"""Messages between the server and a model's worker process.

The server sends `Load` once, then `Generate`, `Embed`, `Render` and `Cancel`;
the worker answers `Loaded` (or `LoadFailed`), then per request a stream of
`Piece` and one `Done` or `Failed` (or `Embedded`, `Rendered`), sent as one list per
decode step (the events of every request that advanced). Plain dataclasses of
builtins: they are pickled over a socket pair, and this module is all the
server imports from the engine, so it must stay free of llama_cpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localllm.planner.settings import LoadSettings


@dataclass(frozen=True)
class Adapter:
    path: str
    scale: float = 1.0


@dataclass(frozen=True)
class Draft:
    """A draft model to speculate with (`engine.draft`), loaded in the same worker."""

    path: str
    settings: LoadSettings


@dataclass(frozen=True)
class Load:
    paths: tuple[str, ...]
    """The model's files: one, or every shard of a split model in order."""
    settings: LoadSettings
    adapters: tuple[Adapter, ...] = ()
    draft: Draft | None = None
    projector: str | None = None
    """The vision projector (`mmproj` GGUF) that lets the model read images."""
    prompt_cache: str | None = None
    """The folder of this model's saved prefixes (`engine.prompt_cache`); None: none."""
    prompt_cache_bytes: int = 0
    """The most every model's saved prefixes may take together."""


@dataclass(frozen=True)
class Loaded:
    settings: LoadSettings
    """What was really loaded: fewer GPU layers than asked if memory ran out."""
    n_ctx_train: int
    chat_template: str | None
    load_seconds: float
    notes: tuple[str, ...] = ()
    vision: bool = False
    """Whether the model reads images (its projector loaded)."""


@dataclass(frozen=True)
class LoadFailed:
    message: str


@dataclass(frozen=True)
class Sampling:
    """Ollama's option names; None means llama.cpp's usual default."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    num_predict: int = -1
    """-1: until the model stops or the context is full."""
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    """Generate past the model's end tokens (benchmarks want exact lengths)."""
    logprobs: int = -1
    """Log probabilities of each generated token: -1 none, else the chosen token's and
    this many of the most likely ones (0 to 20)."""
    prompt_lookup: bool = True
    """Guess greedy answers ahead from the text so far (`engine.speculation`)."""
    draft_max: int = -1
    """The most tokens guessed per pass (-1: the engine's `K_MAX`; 0: no speculation)."""


MARKER = "<__media__>"
"""Where an image goes in a prompt's text: libmtmd's default marker, which the server
writes into messages (one per image, in the order of `Generate.images`)."""


@dataclass(frozen=True)
class Image:
    """An image the server decoded and checked (`inference.images`): its RGB pixels."""

    width: int
    height: int
    rgb: bytes
    """width * height * 3 bytes, row by row."""
    digest: str
    """sha256 of the pixels: the same image is the same prefix in a slot's cache."""


@dataclass(frozen=True)
class Generate:
    id: int
    messages: tuple[dict[str, Any], ...] | None = None
    """Chat messages ({role, content, tool_calls?...}) rendered with `template`."""
    prompt: str | None = None
    """Raw text to continue (used when `messages` is None)."""
    suffix: str | None = None
    """Fill in the middle: the text after the insertion point, `prompt` the text
    before it (with the template's `.Suffix`, else the model's FIM tokens)."""
    template: str | None = None
    """A Jinja chat template overriding the model's own."""
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str = "auto"
    """auto | none | required: `required` constrains the output to a tool call."""
    sampling: Sampling = field(default_factory=Sampling)
    grammar: str | None = None
    """GBNF that constrains the output (`format`, a forced tool call), made and
    checked by the server (`localllm.constraints`)."""
    truncate: bool = False
    """Drop the oldest messages (or tokens) when the prompt exceeds the context,
    instead of refusing the request."""
    shift: bool = False
    """At the end of the context, drop the older half of the tokens after the first
    `num_keep` and go on (Ollama's `shift`), instead of ending with "length"."""
    num_keep: int = 4
    """Prompt tokens (after BOS) a shift never drops; Ollama's default is 4."""
    think: bool | None = None
    """The request's `think` (None: not set), given to the template."""
    think_level: str = ""
    """"low" | "medium" | "high" when `think` named a level."""
    preserve: tuple[str, ...] = ()
    """Control tokens to write out as text (the reply's format reads them:
    `localllm.formats`); llama.cpp drops control tokens from text otherwise."""
    images: tuple[Image, ...] = ()
    """The images of the prompt, one per `MARKER` in its text, in order."""
    lora: tuple[tuple[int, float], ...] | None = None
    """The LoRA adapters (index among the load's, scale) this request runs with
    (llama-server's `lora`); None: each of the load's at its Modelfile scale."""


@dataclass(frozen=True)
class Embed:
    id: int
    inputs: tuple[str, ...]
    truncate: bool = True


@dataclass(frozen=True)
class Rank:
    """How well each document answers `query`, by a reranker (pooling type rank)."""

    id: int
    query: str
    documents: tuple[str, ...]
    truncate: bool = True


@dataclass(frozen=True)
class Render:
    """The prompt text `request` would feed the model (`/apply-template`)."""

    id: int
    request: Generate


@dataclass(frozen=True)
class Cancel:
    id: int


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, log probability (from the model's logits, before
    sampling), bytes, and the most likely tokens at its position."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[tuple[str, float, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""
    """Given by the server when it parses the reply (`localllm.inference.replies`)."""


@dataclass(frozen=True)
class Piece:
    id: int
    text: str
    """The model's text; once the server parsed the reply (`localllm.inference.replies`),
    the answer's text only."""
    logprobs: tuple[TokenLogprob, ...] = ()
    """The tokens this text came from, when the request asked for logprobs."""
    thinking: str = ""
    calls: tuple[ToolCall, ...] = ()
    """Tool calls completed in this piece (filled by the server's parsing)."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """On the answer's first piece: its prompt's tokens, and those reused from the cache
    (an API that states them before the answer, as Anthropic's `message_start`)."""


@dataclass(frozen=True)
class Done:
    id: int
    reason: str
    """stop | length | cancel | tool_calls"""
    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens reused from the previous request's KV cache (not recomputed)."""
    eval_tokens: int
    prompt_ns: int
    eval_ns: int
    content: str
    """The whole answer (stop sequences removed; thinking and tool-call text too once
    the server parsed the reply)."""
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: str = ""
    stop_sequence: str = ""
    """The stop sequence that ended the answer, if one did."""
    logprobs: tuple[TokenLogprob, ...] = ()
    """Logprobs of tokens whose text no piece carried (held back, then dropped)."""
    drafted: int = 0
    accepted: int = 0
    """Guessed tokens verified (`engine.speculation`), and those the model took."""
    passes: int = 0
    """Decodes of the model this answer took (tokens per pass: `eval_tokens / passes`)."""
    image_tokens: int = 0
    """Of `prompt_tokens`, those of images."""
    encoded_images: int = 0
    """Images encoded for this answer (an image the slot's cache held is not)."""
    kv_used: int = 0
    """KV cache cells the model's slots held when this answer ended (`/metrics`)."""


@dataclass(frozen=True)
class Embedded:
    id: int
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


@dataclass(frozen=True)
class Ranked:
    id: int
    scores: tuple[float, ...]
    """One per document, in the order sent: the reranker's score (higher: better)."""
    prompt_tokens: int


@dataclass(frozen=True)
class Rendered:
    id: int
    prompt: str
    """Exactly the text the model would be fed (before its BOS token, which the
    tokenizer adds where the model wants one)."""
    tokens: int


@dataclass(frozen=True)
class Failed:
    id: int
    status: int
    """The HTTP status the API should answer (400 for a prompt too long...)."""
    message: str
    overflow: tuple[int, int] | tuple[()] = ()
    """For a prompt longer than the context: (its tokens, the context's)."""


Request = Generate | Embed | Rank | Render | Cancel
Event = Piece | Done | Embedded | Ranked | Rendered | Failed
