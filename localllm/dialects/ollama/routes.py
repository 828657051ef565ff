"""Ollama's native API (`/api/...`): each route parses its body, decodes it into the
core's request, calls a service and encodes the answer (NDJSON streams, durations in
nanoseconds)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from localllm import __version__
from localllm.dialects.ollama import decode, encode
from localllm.dialects.ollama.protocol import (
    ChatBody,
    CopyBody,
    CreateBody,
    EmbedBody,
    GenerateBody,
    LegacyEmbeddingsBody,
    NameBody,
    ShowBody,
)
from localllm.dialects.wire import Services, ndjson, parse, run_job
from localllm.errors import APIError
from localllm.inference.request import EmbedRequest, PromptRequest, Sampling
from localllm.inference.service import Reply
from localllm.models.changes import CreateRequest

OLLAMA_VERSION = "0.13.5"
"""The Ollama release whose API (`/api/...`) this dialect answers like."""


class OllamaAPI:
    def __init__(self, services: Services) -> None:
        self.inference = services.inference
        self.catalog = services.catalog
        self.changes = services.changes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/api/embeddings", self.embeddings, methods=["POST"]),
            Route("/api/pull", self.pull, methods=["POST"]),
            Route("/api/create", self.create, methods=["POST"]),
            Route("/api/copy", self.copy, methods=["POST"]),
            Route("/api/delete", self.delete, methods=["DELETE"]),
            Route("/api/blobs/{digest}", self.has_blob, methods=["HEAD"]),
            Route("/api/blobs/{digest}", self.upload_blob, methods=["POST"]),
        ]

    # --- generation -----------------------------------------------------------------

    async def generate(self, request: Request) -> Response:
        body = await parse(request, GenerateBody)
        if not body.prompt:
            return await self._load(
                body.model,
                body.options.model_dump(exclude_none=True),
                body.keep_alive,
                {"response": ""},
            )
        decoded = decode.generate(body)
        if isinstance(decoded, PromptRequest):
            reply = await self.inference.prompt(decoded)
        else:
            reply = await self.inference.chat(decoded)
        return await _answer(reply, body.stream, encode.response)

    async def chat(self, request: Request) -> Response:
        body = await parse(request, ChatBody)
        if not body.messages:
            fields = {"message": {"role": "assistant", "content": ""}}
            return await self._load(
                body.model, body.options.model_dump(exclude_none=True), body.keep_alive, fields
            )
        reply = await self.inference.chat(decode.chat(body))
        return await _answer(reply, body.stream, encode.message)

    async def _load(
        self, model: str, options: dict[str, Any], keep_alive: Any, fields: dict[str, Any]
    ) -> Response:
        name, load_ns = await self.inference.load(model, Sampling(options), keep_alive)
        return JSONResponse(encode.loaded(name, load_ns, fields))

    async def embed(self, request: Request) -> Response:
        body = await parse(request, EmbedBody)
        inputs = (body.input,) if isinstance(body.input, str) else tuple(body.input)
        result = await self.inference.embed(
            EmbedRequest(
                body.model,
                inputs,
                body.truncate,
                body.options.model_dump(exclude_none=True),
                body.keep_alive,
                body.dimensions,
            )
        )
        return JSONResponse(
            {
                "model": result.model,
                "embeddings": [list(v) for v in result.vectors],
                "total_duration": result.total_ns,
                "load_duration": result.load_ns,
                "prompt_eval_count": result.prompt_tokens,
            }
        )

    async def embeddings(self, request: Request) -> Response:
        body = await parse(request, LegacyEmbeddingsBody)
        result = await self.inference.embed(
            EmbedRequest(
                body.model,
                (body.prompt,),
                True,
                body.options.model_dump(exclude_none=True),
                body.keep_alive,
            )
        )
        return JSONResponse({"embedding": list(result.vectors[0])})

    # --- models ---------------------------------------------------------------------

    async def version(self, request: Request) -> Response:
        """The Ollama release whose API this server matches, as apps compare it (Codex
        wants >= 0.13.4, VS Code's Copilot >= 0.6.4; Open WebUI reads it as numbers),
        and beyond it localllm's own version and what the CLI checks before it trusts
        this server: the models folder it serves and its process (for `serve --stop`)."""
        own = {"version": __version__, "models": str(self.catalog.folder()), "pid": os.getpid()}
        return JSONResponse({"version": OLLAMA_VERSION, "localllm": own})

    async def root(self, request: Request) -> Response:
        return Response("localllm is running", media_type="text/plain")

    async def tags(self, request: Request) -> Response:
        return JSONResponse({"models": await asyncio.to_thread(self.catalog.entries)})

    async def ps(self, request: Request) -> Response:
        workers = await asyncio.to_thread(self.catalog.workers)
        # "workers" is beyond Ollama's shape: the RPC workers, their models and health.
        return JSONResponse({"models": self.catalog.running(), "workers": workers})

    async def show(self, request: Request) -> Response:
        body = await parse(request, ShowBody)
        manifest = self.inference.manifest(body.target)
        options = body.options.model_dump(exclude_none=True)
        card = await asyncio.to_thread(
            self.catalog.show, manifest, body.verbose, body.system, body.template, options
        )
        return JSONResponse(card)

    async def copy(self, request: Request) -> Response:
        body = await parse(request, CopyBody)
        await asyncio.to_thread(self.changes.copy, body.source, body.destination)
        return JSONResponse({})

    async def delete(self, request: Request) -> Response:
        body = await parse(request, NameBody)
        manifest = self.inference.manifest(body.target)
        await asyncio.to_thread(self.changes.delete, manifest)
        return JSONResponse({})

    async def pull(self, request: Request) -> Response:
        body = await parse(request, NameBody)
        target = body.target
        if not target:
            raise APIError(400, "model is required")
        return await run_job(
            lambda emit: self.changes.pull(target, emit), body.stream, encode.progress
        )

    async def create(self, request: Request) -> Response:
        body = await parse(request, CreateBody)
        licenses = [body.license] if isinstance(body.license, str) else list(body.license or [])
        job = self.changes.create_job(
            CreateRequest(
                name=body.model or body.name or "",
                from_=body.from_,
                modelfile=body.modelfile,
                files=body.files or {},
                adapters=body.adapters or {},
                template=body.template,
                system=body.system,
                licenses=tuple(licenses),
                parameters=body.parameters or {},
                messages=tuple((m.role, m.content or "") for m in body.messages or ()),
                quantize=body.quantize,
            )
        )
        return await run_job(job, body.stream, encode.progress)

    async def has_blob(self, request: Request) -> Response:
        """`HEAD /api/blobs/sha256:<digest>`: is it here?"""
        found = self.changes.has_blob(request.path_params["digest"])
        return Response(status_code=200 if found else 404)

    async def upload_blob(self, request: Request) -> Response:
        """The bytes of a blob, streamed to a temporary file beside the store's blobs,
        hashed as they arrive, and named only once they match their digest: an upload
        that is cut off, or is not what its digest says (a 400), leaves nothing behind."""
        digest = request.path_params["digest"]
        if self.changes.has_blob(digest):
            return Response(status_code=200)
        writer = await asyncio.to_thread(self.changes.receive_blob, digest)
        try:
            async for chunk in request.stream():
                await asyncio.to_thread(writer.write, chunk)
            await asyncio.to_thread(writer.commit)
        finally:
            writer.abort()
        return Response(status_code=201)


async def _answer(reply: Reply, stream: bool, fields: encode.Fields) -> Response:
    if not stream:
        return JSONResponse(encode.whole(reply.model, await reply.whole(), fields))
    return ndjson(encode.chunks(reply.model, aiter(reply), fields))
