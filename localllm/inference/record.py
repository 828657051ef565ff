"""What a request did, for its line in the access log and the metrics
(`localllm.server.access_log`, `localllm.server.metrics`): the model it asked for,
the tokens of its answer and when the first came, filled in here by the inference
service, into a record the HTTP middleware puts in the request's context."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field


@dataclass
class AccessRecord:
    model: str | None = None
    prompt_tokens: int | None = None
    eval_tokens: int | None = None
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    """When the first token of the answer came (`time.perf_counter`)."""
    ended: float | None = None
    """When the answer's last token came."""
    prompt_s: float | None = None
    """How long the worker took over the prompt, once it had a slot for it."""
    key: str = ""
    """The name of the API key the request came with ("" without one)."""
    client: str = ""
    """The client's address."""

    @property
    def who(self) -> str:
        """Whose turn a waiting request takes (`workers.turns`): its key, else address."""
        return f"key:{self.key}" if self.key else f"address:{self.client}"


_RECORD: contextvars.ContextVar[AccessRecord | None] = contextvars.ContextVar(
    "localllm_access", default=None
)


def model(name: str) -> None:
    """The model this request asked for, on its line."""
    record = _RECORD.get()
    if record is not None:
        record.model = name.removesuffix(":latest")


def tokens(prompt: int, generated: int, prompt_s: float | None = None) -> None:
    """The prompt and generated tokens of this request's answer, at its end; `prompt_s`:
    the worker's time over the prompt."""
    record = _RECORD.get()
    if record is not None:
        record.prompt_tokens, record.eval_tokens = prompt, generated
        record.ended, record.prompt_s = time.perf_counter(), prompt_s


def first_token() -> None:
    """The answer's first token has come."""
    record = _RECORD.get()
    if record is not None and record.first_token is None:
        record.first_token = time.perf_counter()


def who() -> str:
    """This request's client, for the turns of a busy model ("" outside a request)."""
    record = _RECORD.get()
    return record.who if record is not None else ""


def current() -> AccessRecord | None:
    """This request's record (None outside a request)."""
    return _RECORD.get()


class Recording:
    def __init__(self, token: contextvars.Token[AccessRecord | None]) -> None:
        self._token = token

    def reset(self) -> None:
        _RECORD.reset(self._token)


def recording(record: AccessRecord) -> Recording:
    """Fill `record` for the rest of this request (until `reset`)."""
    return Recording(_RECORD.set(record))
