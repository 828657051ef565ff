"""A store job (pull, create) in a thread, its progress streamed as NDJSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from localllm.server.errors import message_of, status_of

Emit = Callable[[dict[str, Any]], None]
Job = Callable[[Emit], object]


def ndjson(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Stream dicts as JSON lines; an error after the 200 becomes an `{"error"}` line."""

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield json.dumps(chunk).encode() + b"\n"
        except Exception as exc:
            yield json.dumps({"error": message_of(exc)}).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def run_job(job: Job, stream: bool) -> Response:
    if not stream:
        try:
            await asyncio.to_thread(job, lambda event: None)
        except Exception as exc:
            return JSONResponse({"error": message_of(exc)}, status_code=status_of(exc))
        return JSONResponse({"status": "success"})
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

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
            yield item

    return ndjson(chunks())
