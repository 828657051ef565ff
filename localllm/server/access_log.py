"""One line per request in the server's log, as Ollama's server prints them: when,
who, what, the answer's status, how long it took, and for a generation the model and
its prompt and generated tokens.

    127.0.0.1:53122 "POST /api/chat" 200 1.204s model=llama3.2:3b prompt=31 eval=120

The same measurements go to the observers (the metrics). The inference service
fills in what only it knows (`localllm.inference.record`), into
a record the middleware puts in the request's context. A client that
goes away mid-answer is said on its line ("client gone"), not as a traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from localllm.inference.record import AccessRecord, recording
from localllm.server.security import ASGIApp, Receive, Scope, Send

log = logging.getLogger("localllm.access")


def line(scope: Scope, status: int, seconds: float, record: AccessRecord, note: str = "") -> str:
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    path = json.dumps(scope["path"])[1:-1]  # a newline in a path cannot forge a line
    text = f'{who} "{scope["method"]} {path}" {status} {seconds:.3f}s'
    if record.model:
        text += f" model={record.model}"
    if record.prompt_tokens is not None:
        text += f" prompt={record.prompt_tokens} eval={record.eval_tokens}"
    return text + (f" ({note})" if note else "")


Observer = Callable[[Scope, int, AccessRecord], None]
"""Told of each answered request beside the log (`server.metrics.Metrics.observe`)."""


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, observers: Sequence[Observer] = ()) -> None:
        self.app = app
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        record = AccessRecord(client=client[0] if client else "")
        token = recording(record)
        started = time.perf_counter()
        status = 0
        finished = False

        async def sending(message: Any) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                finished = not message.get("more_body", False)
            await send(message)

        note = ""
        try:
            await self.app(scope, receive, sending)
            if status and not finished:
                note = "client gone before the end"
        except OSError as exc:  # the client's socket went away while it was answered
            if not status:
                raise
            note = f"client gone: {type(exc).__name__}"
        finally:
            token.reset()
            log.info(line(scope, status or 500, time.perf_counter() - started, record, note))
            for observe in self.observers:
                observe(scope, status or 500, record)
