"""Bounds on what one request may make the server hold, checked before a route runs.

- A body larger than `max_body_bytes` gets 413 before it is read: at once when its
  `Content-Length` says so, else as soon as the bytes received pass the limit (a
  chunked body). Blob uploads are exempt: they are streamed to disk and verified.
- A body that stops arriving for `request_timeout_s` ends the request with 408 (the
  connection's own timeouts, before and between requests, are `server.connections`').
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from localllm.errors import APIError
from localllm.server.errors import error_body
from localllm.server.security import ASGIApp, Receive, Scope, Send
from localllm.server.settings import ServerSettings

EXEMPT = ("/api/blobs/",)
"""Uploads, streamed to disk as they arrive."""


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.timeout = settings.request_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.limit:
            body = error_body(scope["path"], 413, self._too_large(length))
            await _answer(send, 413, body)
            return
        await self.app(scope, self._bounded(receive), send)

    def _too_large(self, size: int | None) -> str:
        got = f"{size:,} bytes" if size is not None else "more"
        mib = self.limit >> 20
        return (
            f"the request body is {got}, over this server's limit of {mib} MiB "
            "(LOCALLLM_MAX_BODY_MB)"
        )

    def _bounded(self, receive: Receive) -> Receive:
        received = 0
        done = False

        async def bounded() -> MutableMapping[str, Any]:
            nonlocal received, done
            if done:  # the body is whole: what is left is waiting for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise APIError(
                    408, f"the request body stopped arriving for {self.timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise APIError(413, self._too_large(None))
                done = not message.get("more_body", False)
            return message

        return bounded


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, status: int, error: dict[str, object]) -> None:
    body = json.dumps(error).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
