"""localllm's own endpoints, beyond the Ollama and OpenAI APIs.

`GET /api/hardware`: the hardware report of the machine the server runs on
(the JSON of `localllm hw --json`). `GET /api/fit`: for every local model, how
the planner would load it on the whole machine (the models screen's badge).
Both answer for the server's machine, which is the one that matters when the
TUI talks to a server elsewhere.
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


ROUTES = [
    Route("/api/hardware", hardware, methods=["GET"]),
    Route("/api/fit", fit, methods=["GET"]),
]
