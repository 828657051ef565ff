"""OpenAI's API (`/v1/...`): Chat Completions, Completions, Responses, embeddings and
models, in the shapes the official `openai` client expects."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from localllm.dialects.openai import decode, encode
from localllm.dialects.openai.protocol import (
    ChatCompletionBody,
    CompletionBody,
    EmbeddingsBody,
    RerankBody,
)
from localllm.dialects.openai.responses import decode as responses_decode
from localllm.dialects.openai.responses import encode as responses_encode
from localllm.dialects.openai.responses.protocol import ResponsesBody
from localllm.dialects.wire import Services, parse, sse
from localllm.errors import APIError
from localllm.inference.events import Finished
from localllm.inference.request import EmbedRequest, Message, RerankRequest


class OpenAIAPI:
    def __init__(self, services: Services) -> None:
        self.inference = services.inference
        self.catalog = services.catalog
        self.conversations = services.conversations

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
            Route("/v1/responses/{id}", self.kept_response, methods=["GET"]),
            Route("/v1/responses/{id}", self.forget_response, methods=["DELETE"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/rerank", self.rerank, methods=["POST"]),
            Route("/v1/reranking", self.rerank, methods=["POST"]),
        ]

    async def chat_completions(self, request: Request) -> Response:
        body = await parse(request, ChatCompletionBody)
        reply = await self.inference.chat(decode.chat(body))
        head = encode.chat_head(body.model)
        if not body.stream:
            return JSONResponse(encode.chat_whole(head, await reply.whole(), body.logprobs))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = encode.chat_chunks(head, aiter(reply), body.logprobs, include_usage)
        return sse(chunks, encode.stream_error)

    async def completions(self, request: Request) -> Response:
        body = await parse(request, CompletionBody)
        decoded = decode.completion(body)
        reply = await self.inference.prompt(decoded)
        out = encode.Completion(body.model, decoded.prompt, body.logprobs is not None)
        if not body.stream:
            return JSONResponse(out.whole(await reply.whole()))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse(out.chunks(aiter(reply), include_usage), encode.stream_error)

    async def responses(self, request: Request) -> Response:
        body = await parse(request, ResponsesBody)
        earlier: tuple[Message, ...] = ()
        if body.previous_response_id:
            kept = await asyncio.to_thread(self.conversations.get, body.previous_response_id)
            if kept is None:
                raise APIError(404, f"previous_response_id: no response "
                               f"{body.previous_response_id!r} is kept here (expired, deleted, "
                               "or sent with store: false)")  # fmt: skip
            earlier = kept.messages
        chat = responses_decode.request(body, earlier)
        reply = await self.inference.chat(chat)
        base = responses_encode.base(body)
        conversation = responses_decode.conversation(body, earlier)

        def keep(response: dict[str, Any], done: Finished) -> None:
            if body.store is not False:
                turns = (*conversation, responses_encode.answer(done))
                self.conversations.put(response["id"], turns, response)

        if not body.stream:
            done = await reply.whole()
            response = responses_encode.whole(base, done)
            await asyncio.to_thread(keep, response, done)
            return JSONResponse(response)
        return sse(responses_encode.stream(base, aiter(reply), keep), encode.stream_error)

    async def kept_response(self, request: Request) -> Response:
        """`GET /v1/responses/{id}`: a kept response as it was sent."""
        kept = await asyncio.to_thread(self.conversations.get, request.path_params["id"])
        if kept is None:
            raise APIError(404, f"no response {request.path_params['id']!r} is kept here")
        return JSONResponse(kept.response)

    async def forget_response(self, request: Request) -> Response:
        rid = request.path_params["id"]
        if not await asyncio.to_thread(self.conversations.delete, rid):
            raise APIError(404, f"no response {rid!r} is kept here")
        return JSONResponse({"id": rid, "object": "response", "deleted": True})

    async def embeddings(self, request: Request) -> Response:
        body = await parse(request, EmbeddingsBody)
        inputs = (body.input,) if isinstance(body.input, str) else tuple(body.input)
        result = await self.inference.embed(
            EmbedRequest(body.model, inputs, dimensions=body.dimensions)
        )
        data: list[dict[str, Any]] = []
        for i, vector in enumerate(result.vectors):
            values: Any = list(vector)
            if body.encoding_format == "base64":
                values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": i, "embedding": values})
        tokens = result.prompt_tokens
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def rerank(self, request: Request) -> Response:
        """`/v1/rerank` (llama-server's, Jina's and Cohere's shape): `results` of `index` and
        `relevance_score`, best first."""
        body = await parse(request, RerankBody)
        texts = tuple(d if isinstance(d, str) else d.text for d in body.documents)
        ranking = await self.inference.rerank(
            RerankRequest(body.model, body.query, texts, body.top_n)
        )
        results: list[dict[str, Any]] = []
        for index, score in ranking.results:
            entry: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.return_documents:
                entry["document"] = {"text": texts[index]}
            results.append(entry)
        usage = {"prompt_tokens": ranking.prompt_tokens, "total_tokens": ranking.prompt_tokens}
        return JSONResponse(
            {"object": "list", "model": body.model, "results": results, "usage": usage}
        )

    async def models(self, request: Request) -> Response:
        def entries() -> list[dict[str, Any]]:
            return [_model(self.catalog.summary(m)) for m in self.catalog.manifests()]

        return JSONResponse({"object": "list", "data": await asyncio.to_thread(entries)})

    async def model(self, request: Request) -> Response:
        """`GET /v1/models/{id}`: one model, or OpenAI's 404 shape."""
        manifest = self.inference.manifest(request.path_params["model"])
        return JSONResponse(_model(await asyncio.to_thread(self.catalog.summary, manifest)))


def _model(summary: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's model object, and beyond it the context window apps size their prompts
    by (no hosted API says it; opencode, Codex and Zed users ask for it)."""
    name = summary["name"]
    return {"id": name, "object": "model", "created": int(summary["created"]),
            "owned_by": name.split("/")[0] if "/" in name else "library",
            "context_length": summary["context_length"],
            "max_context_length": summary["max_context_length"],
            "capabilities": summary["capabilities"]}  # fmt: skip
