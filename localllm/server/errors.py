"""Every failure as JSON `{"error": message}` with the status that says whose fault it is.

Bad JSON or wrong field types are 400 with the field named; an unknown
model 404; a full queue 503 with Retry-After; anything a user can cause
that is a `LocalLLMError` 400 unless a subclass says otherwise. Only a bug
is a 500, and even then the body is JSON, not a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from localllm.errors import LocalLLMError

log = logging.getLogger("localllm.server")
PARSE_INLINE_BYTES = 1 << 20
"""Bodies up to this size are parsed on the event loop; larger ones in a thread, so the
streams the loop is sending do not pause for them."""
M = TypeVar("M", bound=BaseModel)


class APIError(LocalLLMError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(exc: BaseException) -> int:
    """An error's own `status` (each kind that is not a plain 400 says which it is: an
    unknown model 404, a busy one 503, a store that cannot be written 500...); else 400
    for an error a person caused, 500 for a bug."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    return 400 if isinstance(exc, LocalLLMError) else 500


def message_of(exc: BaseException) -> str:
    if isinstance(exc, LocalLLMError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); see the server log"


_OPENAI_TYPES = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    503: "overloaded_error",
}


_ANTHROPIC_TYPES = {**_OPENAI_TYPES, 413: "request_too_large", 429: "rate_limit_error",
                    500: "api_error", 502: "api_error"}  # fmt: skip


def error_body(path: str, status: int, message: str) -> dict[str, object]:
    """`{"error": message}`; under /v1/messages Anthropic's `{"type": "error", "error":
    {"type", "message"}}`; elsewhere under /v1 OpenAI's `{"error": {"message", "type",
    "code"}}`: the shapes their clients show."""
    if path.startswith("/v1/messages"):
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if path.startswith("/v1/"):
        kind = _OPENAI_TYPES.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "code": status}}
    return {"error": message}


def error_response(exc: BaseException, path: str = "") -> JSONResponse:
    status = status_of(exc)
    if not isinstance(exc, LocalLLMError):
        log.exception("unexpected error", exc_info=exc)
    retry = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(retry)} if isinstance(retry, int) else {}
    if status in (408, 413):  # the rest of the body is not read: the connection ends
        headers["Connection"] = "close"
    body = error_body(path, status, message_of(exc))
    return JSONResponse(body, status_code=status, headers=headers)


async def handle(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc, request.url.path)


async def parse(request: Request, model: type[M]) -> M:
    """The JSON body as `model`; APIError 400 naming the field that is wrong."""
    body = await request.body()
    if not body.strip():
        raise APIError(400, "the request body is empty; send a JSON object")
    try:
        if len(body) > PARSE_INLINE_BYTES:  # a big body is parsed off the event loop
            return await asyncio.to_thread(model.model_validate_json, body)
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise APIError(400, describe_validation(exc)) from None


def describe_validation(exc: ValidationError) -> str:
    """The first problems, each at its field's path (`messages.0.content.0: ...`). A
    field that may be one of several shapes (a string or a list of blocks) fails in
    each; the deepest failure is the one that says what is wrong."""
    found = [(_where(error["loc"]), error) for error in exc.errors()]
    deepest = [
        (where, error)
        for where, error in found
        if not any(other != where and other.startswith(where + ".") for other, _ in found)
    ]
    problems: list[str] = []
    for where, error in deepest:
        if error["type"] == "json_invalid":
            text = f"the body is not valid JSON ({error['ctx'].get('error', '')})"
        elif where:
            text = f"{where}: {error['msg'].removeprefix('Value error, ')}"
        else:
            text = error["msg"]
        if text not in problems:
            problems.append(text)
    return "invalid request: " + "; ".join(problems[:3])


_SHAPES = {"str", "int", "float", "bool", "list", "dict", "none"}


def _where(loc: tuple[int | str, ...]) -> str:
    """A path of field names and indexes, without pydantic's names of union members
    (`str`, `list[...]`, `tagged-union[...]`, class names)."""
    parts = [
        str(p)
        for p in loc
        if isinstance(p, int)
        or not (p in _SHAPES or "[" in p or p[:1].isupper() or p.startswith("function-"))
    ]
    return ".".join(parts)
