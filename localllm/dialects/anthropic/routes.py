"""Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`), so coding
agents and apps written for Claude run on local models."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from localllm.dialects.anthropic import decode, encode
from localllm.dialects.anthropic.protocol import CountTokensBody, MessagesBody
from localllm.dialects.wire import Services, parse, sse


class AnthropicAPI:
    def __init__(self, services: Services) -> None:
        self.inference = services.inference

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
        ]

    async def messages(self, request: Request) -> Response:
        body = await parse(request, MessagesBody)
        reply = await self.inference.chat(decode.request(body))
        head = encode.head(body.model)
        if not body.stream:
            return JSONResponse(encode.whole(head, await reply.whole()))
        return sse(encode.stream(head, aiter(reply), reply.prompt), encode.stream_error)

    async def count_tokens(self, request: Request) -> Response:
        """The prompt's tokens, counted by the model's worker with the template a
        request renders with."""
        body = await parse(request, CountTokensBody)
        _, tokens = await self.inference.count(decode.request(body))
        return JSONResponse({"input_tokens": tokens})
