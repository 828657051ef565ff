"""Ollama's blob uploads: `HEAD /api/blobs/sha256:<digest>` (is it here?) and `POST`
(the bytes), the path Ollama's CLI and web front-ends take to create a model from a
GGUF on another machine (then `/api/create` with `files` and `adapters`).

The body is streamed to a temporary file beside the store's blobs, hashed as it
arrives, and named only once it matches its digest: an upload that is cut off, or
is not what its digest says (a 400), leaves nothing behind. Never held in memory.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from localllm.server.errors import APIError
from localllm.server.state import state
from localllm.store.blobs import DigestMismatch, digest_name


async def head(request: Request) -> Response:
    digest = digest_name(request.path_params["digest"])
    return Response(status_code=200 if state(request).store.blobs.has(digest) else 404)


async def upload(request: Request) -> Response:
    blobs = state(request).store.blobs
    digest = digest_name(request.path_params["digest"])
    if blobs.has(digest):
        return Response(status_code=200)
    writer = await asyncio.to_thread(blobs.receive, digest)
    try:
        async for chunk in request.stream():
            await asyncio.to_thread(writer.write, chunk)
        await asyncio.to_thread(writer.commit)
    except DigestMismatch as exc:
        raise APIError(400, str(exc)) from None
    finally:
        writer.abort()
    return Response(status_code=201)


ROUTES = [
    Route("/api/blobs/{digest}", head, methods=["HEAD"]),
    Route("/api/blobs/{digest}", upload, methods=["POST"]),
]
