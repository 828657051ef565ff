"""A request's prompt as tokens, checked against the context of one slot.

Ollama silently cuts prompts that are too long; here a prompt over the
context is refused with both numbers unless the request asks for
truncation, which drops the oldest messages first (the system prompt
stays), then the oldest tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localllm.engine.chat import render
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate
from localllm.errors import LocalLLMError
from localllm.templates.ollama import is_go_template


class PromptTooLong(LocalLLMError):
    def __init__(self, message: str, tokens: int, n_ctx: int) -> None:
        super().__init__(message)
        self.overflow: tuple[int, int] | tuple[()] = (tokens, n_ctx)


class NoInsert(LocalLLMError):
    """A suffix for a model that cannot fill in the middle."""


@dataclass(frozen=True)
class Prepared:
    """A text request whose prompt was tokenized off the step loop (`engine.inbox`),
    or failed to be (`error`, reported by the step loop in the request's turn)."""

    request: Generate
    tokens: list[int]
    error: Exception | None = None

    @property
    def id(self) -> int:
        return self.request.id


Tokenize = Callable[[str, bool], list[int]]
"""(text, add_special) -> tokens: the model's tokenizer, or one that also places images
(`engine.vision.ImagePrompt`, which gives each image's tokens a negative id)."""


def prompt_tokens(
    model: LlamaModel, request: Generate, n_ctx: int, tokenize: Tokenize | None = None
) -> list[int]:
    """The prompt of `request` for a slot of `n_ctx` tokens; PromptTooLong unless it fits
    or may be cut. Images (negative ids) are never cut through: their messages
    go whole, or the prompt is refused."""
    tokenize = tokenize or (lambda text, special: model.tokenize(text, add_special=special))
    limit = n_ctx - 1  # room for at least one new token
    if request.suffix is not None:
        tokens = _infill_tokens(model, request)
    elif request.messages is None:
        tokens = tokenize(request.prompt or "", True)
    else:
        messages = list(request.messages)
        tokens = _chat_tokens(model, request, messages, tokenize)
        while len(tokens) > limit and request.truncate:
            droppable = [i for i, x in enumerate(messages[:-1]) if x.get("role") != "system"]
            if not droppable:
                break
            del messages[droppable[0]]
            tokens = _chat_tokens(model, request, messages, tokenize)
    images = sum(t < 0 for t in tokens)
    if len(tokens) > limit:
        if not request.truncate or images:
            of_images = f" ({images} of them for images)" if images else ""
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens{of_images} but the context holds "
                f"{n_ctx} (with room for at least one new token): shorten it, raise "
                "num_ctx, or "
                + ('ask for truncation ("truncate": true)' if not images else "send fewer images"),
                len(tokens),
                n_ctx,
            )
        keep = tokens[:1] if model.add_bos and tokens else []  # the BOS token stays
        tokens = keep + tokens[len(tokens) - (limit - len(keep)) :]
    return tokens


def prompt_text(model: LlamaModel, request: Generate) -> str:
    """The text `request` feeds the model: its raw prompt, or its messages rendered with
    its template (the request's, else the model's)."""
    if request.suffix is not None:
        return model.detokenize(_infill_tokens(model, request))
    if request.messages is None:
        return request.prompt or ""
    return _chat_text(model, request, list(request.messages))


def _infill_tokens(model: LlamaModel, request: Generate) -> list[int]:
    """Fill in the middle: Ollama renders a template that knows `.Suffix` with the
    prompt and suffix; otherwise llama.cpp's infill order with the model's FIM tokens
    (`<PRE>` prefix `<SUF>` suffix `<MID>`, after BOS where the model wants one)."""
    prompt, suffix = request.prompt or "", request.suffix or ""
    template = request.template or model.chat_template
    if template and ".Suffix" in template and is_go_template(template):
        from localllm.templates.ollama import ollama_template

        text = ollama_template(template).render((), prompt=prompt, suffix=suffix)
        return model.tokenize(text, add_special=True)
    if model.fim is None:
        raise NoInsert("this model does not support insert (suffix): it has no FIM tokens")
    pre, suf, mid = model.fim
    bos = [model.bos] if model.add_bos and model.bos >= 0 else []
    return [
        *bos, pre, *model.tokenize(prompt, add_special=False, parse_special=False),
        suf, *model.tokenize(suffix, add_special=False, parse_special=False), mid,
    ]  # fmt: skip


def _chat_text(model: LlamaModel, request: Generate, messages: list[dict[str, Any]]) -> str:
    template = request.template or model.chat_template
    tools = request.tools if request.tool_choice != "none" else ()
    return render(
        template,
        messages,
        model.bos_text,
        model.eos_text,
        tools,
        think=request.think,
        think_level=request.think_level,
    )


def _chat_tokens(
    model: LlamaModel, request: Generate, messages: list[dict[str, Any]], tokenize: Tokenize
) -> list[int]:
    text = _chat_text(model, request, messages)
    starts_with_bos = bool(model.bos_text) and text.startswith(model.bos_text)
    return tokenize(text, model.add_bos and not starts_with_bos)
