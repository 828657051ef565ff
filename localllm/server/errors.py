"""Every failure as JSON in its API's shape, with the status that says whose fault it is.

Bad JSON or wrong field types are 400 with the field named; an unknown
model 404; a full queue 503 with Retry-After; anything a user can cause
that is a `LocalLLMError` 400 unless a subclass says otherwise. Only a bug
is a 500, and even then the body is JSON, not a traceback.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from localllm.errors import LocalLLMError, message_of, status_of
from localllm.server.dialects import dialect_of

log = logging.getLogger("localllm.server")


def error_body(
    path: str, status: int, message: str, exc: BaseException | None = None
) -> dict[str, object]:
    """The error in the shape of the API `path` belongs to (`{"error": message}` for
    Ollama's, OpenAI's `{"error": {message, type, code}}`, Anthropic's `{"type": "error",
    "error": {type, message}}`): the shapes their clients show."""
    return dialect_of(path).error_body(status, message, exc)


def error_response(exc: BaseException, path: str = "") -> JSONResponse:
    status = status_of(exc)
    if not isinstance(exc, LocalLLMError):
        log.exception("unexpected error", exc_info=exc)
    retry = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(retry)} if isinstance(retry, int) else {}
    if status in (408, 413):  # the rest of the body is not read: the connection ends
        headers["Connection"] = "close"
    body = error_body(path, status, message_of(exc), exc)
    return JSONResponse(body, status_code=status, headers=headers)


async def handle(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc, request.url.path)
