"""A prompt far longer than the model's context never reaches the worker's tokenizer.

The worker tokenizes a prompt on the thread that decodes every stream of the model,
so a 20 MiB prompt stalled them all for seconds before it was refused for not
fitting. No tokenizer makes a token of more than a few bytes on average (real text:
3 to 5), so a prompt of more than `BYTES_PER_TOKEN` bytes for each token of the
context cannot fit: it is refused here, by its size in bytes, at once; or, when the
request asks for truncation, cut here first (the oldest messages, then the start of
the text) to that size, and the worker trims the rest by tokens as before.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from localllm.engine.protocol import Generate
from localllm.errors import APIError, ContextOverflow

BYTES_PER_TOKEN = 16


def bound_prompt(request: Generate, n_ctx: int) -> Generate:
    """`request` if its text may fit `n_ctx` tokens; else cut (truncation asked) or an
    APIError 400 with both sizes."""
    limit = BYTES_PER_TOKEN * max(n_ctx, 1)
    size = prompt_bytes(request)
    if size <= limit:
        return request
    if not request.truncate or request.images:
        raise ContextOverflow(
            f"the prompt is {size:,} bytes, far more than the model's context of {n_ctx:,} "
            f"tokens can hold (over {BYTES_PER_TOKEN} bytes a token); shorten it, or use a "
            "model or num_ctx with a longer context",
            size // BYTES_PER_TOKEN,  # at least this many tokens
            n_ctx,
        )
    if request.messages is None:
        return replace(request, prompt=_tail(request.prompt or "", limit), suffix=None)
    messages = list(request.messages)
    while len(messages) > 1 and _size(messages, request) > limit:
        index = next((i for i, m in enumerate(messages) if m.get("role") != "system"), 0)
        if index == len(messages) - 1:
            break  # the last message stays, cut below
        del messages[index]
    over = _size(messages, request) - limit
    if over > 0:
        last = dict(messages[-1])
        text = last.get("content")
        keep = len(str(text).encode()) - over if isinstance(text, str) else 0
        last["content"] = _tail(text, keep) if isinstance(text, str) else ""
        messages[-1] = last
    return replace(request, messages=tuple(messages))


def prompt_bytes(request: Generate) -> int:
    """The bytes of text a request feeds the model (its template's own text aside)."""
    if request.messages is None:
        return len((request.prompt or "").encode()) + len((request.suffix or "").encode())
    return _size(list(request.messages), request)


def _size(messages: list[dict[str, Any]], request: Generate) -> int:
    tools = len(json.dumps(request.tools).encode()) if request.tools else 0
    return tools + sum(len(_text(m).encode()) for m in messages)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    else:
        text = ""
    calls = message.get("tool_calls")
    return text + (json.dumps(calls) if calls else "")


def _tail(text: str, keep: int) -> str:
    """The last `keep` bytes of `text`, cut at a character."""
    data = text.encode()
    return data[max(len(data) - max(keep, 0), 0) :].decode(errors="ignore")


def bound_inputs(inputs: tuple[str, ...], n_ctx: int, truncate: bool) -> tuple[str, ...]:
    """Texts to embed, by the same bound: each cut to its start (truncation, as the
    worker cuts by tokens) or an APIError 400 naming its index."""
    limit = BYTES_PER_TOKEN * max(n_ctx, 1)
    out = []
    for i, text in enumerate(inputs):
        size = len(text.encode())
        if size > limit:
            if not truncate:
                raise APIError(
                    400,
                    f"input.{i}: {size:,} bytes, far more than the model's context of "
                    f"{n_ctx:,} tokens can hold; shorten it or allow truncation",
                )
            text = text.encode()[:limit].decode(errors="ignore")
        out.append(text)
    return tuple(out)
