"""localllm's own endpoints, beyond the Ollama and OpenAI APIs.

`GET /api/hardware`: the hardware report of the machine the server runs on
(the JSON of `localllm hw --json`). `GET /api/fit`: for every local model, how
the planner would load it on the whole machine (the models screen's badge).
Both answer for the server's machine, which is the one that matters when the
TUI talks to a server elsewhere. `POST /apply-template` (llama-server's): the
prompt text a chat request with these `messages` and `tools` would feed the
model, rendered by the model's worker with the code a chat renders with.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localllm.server.state import state


async def hardware(request: Request) -> Response:
    report = await asyncio.to_thread(state(request).hardware)
    return JSONResponse(report.to_dict())


async def fit(request: Request) -> Response:
    s = state(request)
    budget = await s.scheduler.budget()
    fits = await asyncio.to_thread(
        lambda: [s.catalog.fit(m, budget) for m in s.catalog.manifests()]
    )
    return JSONResponse({"models": fits})


async def apply_template(request: Request) -> Response:
    from localllm.server.errors import parse
    from localllm.server.ollama import chat_request
    from localllm.server.schemas import ChatBody

    body = await parse(request, ChatBody)
    inference = state(request).inference
    manifest = inference.manifest(body.model)
    options = inference.options(manifest, body.options.model_dump(exclude_none=True))
    gen, _ = await chat_request(inference, manifest, body, options)
    prompt, tokens = await inference.render(manifest, gen, options)
    return JSONResponse({"prompt": prompt, "tokens": tokens})


ROUTES = [
    Route("/apply-template", apply_template, methods=["POST"]),
    Route("/api/hardware", hardware, methods=["GET"]),
    Route("/api/fit", fit, methods=["GET"]),
]
