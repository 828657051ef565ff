"""What every dialect's HTTP side shares: the body parsed into its pydantic model
(a 400 naming the field), the JSON types its bodies use, the streams (SSE, NDJSON)
that turn a failure after the 200 into the dialect's own error event, a store job
run in a thread with its progress streamed, and the services a dialect is given.

A dialect imports this and the core (`localllm.inference`, `localllm.models`) only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic import Strict as _Strict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute

from localllm.errors import APIError, message_of, status_of
from localllm.inference.conversations import Conversations
from localllm.inference.service import Inference
from localllm.models.catalog import Catalog
from localllm.models.changes import Changes, Emit, Progress

M = TypeVar("M", bound=BaseModel)
PARSE_INLINE_BYTES = 1 << 20
"""Bodies up to this size are parsed on the event loop; larger ones in a thread, so the
streams the loop is sending do not pause for them."""
INT32 = 2**31 - 1

Number = StrictInt | Annotated[float, _Strict(), AllowInfNan(False)]
"""A JSON number, finite (no NaN or Infinity, which Python's JSON would let through)."""
Count = Annotated[StrictInt, Field(le=INT32)]
Stop = Annotated[StrictStr, Field(max_length=1024)]
Stops = Annotated[list[Stop], Field(max_length=64)] | Stop


def _not_empty(text: str) -> str:
    if not text:
        raise ValueError("an empty string has no embedding")
    return text


EmbedText = Annotated[StrictStr, AfterValidator(_not_empty)]
EmbedInput = EmbedText | Annotated[list[EmbedText], Field(min_length=1)]
"""What to embed: a string or a list of them, none empty (400 naming the index)."""


class Loose(BaseModel):
    """Unknown fields are ignored, as the hosted APIs ignore them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ToolFunction(Loose):
    """A function tool as Ollama and OpenAI Chat both write it."""

    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class Tool(Loose):
    type: Literal["function"] = "function"
    function: ToolFunction


@dataclass(frozen=True)
class Services:
    """What a dialect's routes call: inference, and model management (reading, and
    changing the store)."""

    inference: Inference
    catalog: Catalog
    changes: Changes
    conversations: Conversations
    """Responses kept for `previous_response_id`."""


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


@dataclass(frozen=True)
class Dialect:
    """One API: the paths whose errors it writes (the longest prefix wins), its routes
    over the services, and its error body. `localllm.server.app` mounts each."""

    name: str
    prefixes: tuple[str, ...]
    routes: Callable[[Services], list[BaseRoute]]
    error_body: Callable[[int, str, BaseException | None], dict[str, Any]]
    """(status, message, the error if there is one) -> the body."""


ErrorLine = Callable[[BaseException], bytes]


def sse(chunks: AsyncIterator[bytes], error: ErrorLine) -> StreamingResponse:
    """An event stream of encoded `chunks`; a failure after the 200 ends it with the
    dialect's `error` event (no traceback, and no other stream is touched)."""

    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            yield error(exc)

    return StreamingResponse(events(), media_type="text/event-stream")


def data(payload: Any) -> bytes:
    """One SSE `data:` event."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def event(kind: str, payload: Any) -> bytes:
    """One named SSE event."""
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def ndjson(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Stream dicts as JSON lines; an error after the 200 becomes an `{"error"}` line."""

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield json.dumps(chunk).encode() + b"\n"
        except Exception as exc:
            yield json.dumps({"error": message_of(exc)}).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


Job = Callable[[Emit], object]


async def run_job(job: Job, stream: bool, shape: Callable[[Progress], dict[str, Any]]) -> Response:
    """A store job in a thread: its progress streamed as NDJSON (each `Progress` in the
    dialect's `shape`), or when not streamed one `{"status": "success"}` at the end."""
    if not stream:
        try:
            await asyncio.to_thread(job, lambda progress: None)
        except Exception as exc:
            return JSONResponse({"error": message_of(exc)}, status_code=status_of(exc))
        return JSONResponse({"status": "success"})
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Progress | BaseException | None] = asyncio.Queue()

    def emit(progress: Progress) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, progress)

    def work() -> None:
        try:
            job(emit)
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    future = loop.run_in_executor(None, work)

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await queue.get()
            if item is None:
                await future
                yield {"status": "success"}
                return
            if isinstance(item, BaseException):
                raise item
            yield shape(item)

    return ndjson(chunks())
