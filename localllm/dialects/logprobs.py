"""Token log probabilities in each API's shape (Ollama's `logprobs` list, OpenAI's
`logprobs.content`, the legacy completions' `logprobs` columns), from the engine's
`TokenLogprob`s."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from localllm.errors import APIError
from localllm.inference.events import TokenLogprob

MAX_TOP = 20


def requested(logprobs: bool, top: int | None) -> int:
    """The engine's `Sampling.logprobs` for a request: -1 for none, else the number of
    alternatives. `top_logprobs` without `logprobs` is a 400, as OpenAI has it."""
    if not logprobs:
        if top:
            raise APIError(400, "top_logprobs needs logprobs: true")
        return -1
    return top or 0


def entries(items: Iterable[TokenLogprob]) -> list[dict[str, Any]]:
    """`[{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]`: Ollama's
    `logprobs` and OpenAI's `logprobs.content` share this shape."""
    out = []
    for item in items:
        entry: dict[str, Any] = {
            "token": item.token,
            "logprob": item.logprob,
            "bytes": list(item.bytes),
        }
        entry["top_logprobs"] = [
            {"token": t, "logprob": lp, "bytes": list(b)} for t, lp, b in item.top
        ]
        out.append(entry)
    return out


def columns(items: Iterable[TokenLogprob], offset: int) -> tuple[dict[str, Any], int]:
    """OpenAI's legacy completions shape, `{tokens, token_logprobs, top_logprobs,
    text_offset}`, and the offset after these tokens. Offsets count characters from
    the start of the prompt, as OpenAI's (and llama-cpp-python's) do."""
    out: dict[str, Any] = {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }
    for item in items:
        out["tokens"].append(item.token)
        out["token_logprobs"].append(item.logprob)
        out["top_logprobs"].append({t: lp for t, lp, _ in item.top})
        out["text_offset"].append(offset)
        offset += len(item.token)
    return out, offset
