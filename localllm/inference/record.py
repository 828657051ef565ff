"""What a request did, for its line in the access log (`localllm.server.access_log`):
the model it asked for and the tokens of its answer, filled in here by the inference
service, into a record the HTTP middleware puts in the request's context."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class AccessRecord:
    model: str | None = None
    prompt_tokens: int | None = None
    eval_tokens: int | None = None


_RECORD: contextvars.ContextVar[AccessRecord | None] = contextvars.ContextVar(
    "localllm_access", default=None
)


def model(name: str) -> None:
    """The model this request asked for, on its line."""
    record = _RECORD.get()
    if record is not None:
        record.model = name.removesuffix(":latest")


def tokens(prompt: int, generated: int) -> None:
    """The prompt and generated tokens of this request's answer, on its line."""
    record = _RECORD.get()
    if record is not None:
        record.prompt_tokens, record.eval_tokens = prompt, generated


class Recording:
    def __init__(self, token: contextvars.Token[AccessRecord | None]) -> None:
        self._token = token

    def reset(self) -> None:
        _RECORD.reset(self._token)


def recording(record: AccessRecord) -> Recording:
    """Fill `record` for the rest of this request (until `reset`)."""
    return Recording(_RECORD.set(record))
