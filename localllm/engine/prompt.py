"""A request's prompt as tokens, checked against the context of one slot.

Ollama silently cuts prompts that are too long; here a prompt over the
context is refused with both numbers unless the request asks for
truncation, which drops the oldest messages first (the system prompt
stays), then the oldest tokens.
"""

from __future__ import annotations

from typing import Any

from localllm.engine.chat import render
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate
from localllm.errors import LocalLLMError


class PromptTooLong(LocalLLMError):
    pass


def prompt_tokens(model: LlamaModel, request: Generate, n_ctx: int) -> list[int]:
    """The prompt of `request` for a slot of `n_ctx` tokens; PromptTooLong unless it fits
    or may be cut."""
    limit = n_ctx - 1  # room for at least one new token
    if request.messages is None:
        tokens = model.tokenize(request.prompt or "", add_special=True)
    else:
        messages = list(request.messages)
        tokens = _chat_tokens(model, request, messages)
        while len(tokens) > limit and request.truncate:
            droppable = [i for i, x in enumerate(messages[:-1]) if x.get("role") != "system"]
            if not droppable:
                break
            del messages[droppable[0]]
            tokens = _chat_tokens(model, request, messages)
    if len(tokens) > limit:
        if not request.truncate:
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens but the context holds {n_ctx} "
                f"(with room for at least one new token): shorten it, raise num_ctx, "
                f'or ask for truncation ("truncate": true)'
            )
        keep = tokens[:1] if model.add_bos and tokens else []  # the BOS token stays
        tokens = keep + tokens[len(tokens) - (limit - len(keep)) :]
    return tokens


def prompt_text(model: LlamaModel, request: Generate) -> str:
    """The text `request` feeds the model: its raw prompt, or its messages rendered with
    its template (the request's, else the model's)."""
    if request.messages is None:
        return request.prompt or ""
    return _chat_text(model, request, list(request.messages))


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


def _chat_tokens(model: LlamaModel, request: Generate, messages: list[dict[str, Any]]) -> list[int]:
    text = _chat_text(model, request, messages)
    starts_with_bos = bool(model.bos_text) and text.startswith(model.bos_text)
    return model.tokenize(text, add_special=model.add_bos and not starts_with_bos)
