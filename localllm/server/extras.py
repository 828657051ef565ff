"""localllm's own endpoints, beyond the APIs it speaks.

`GET /api/hardware`: the hardware report of the machine the server runs on
(the JSON of `localllm hw --json`). `GET /api/fit`: for every local model, how
the planner would load it on the whole machine (the models screen's badge).
Both answer for the server's machine, which is the one that matters when the
TUI talks to a server elsewhere. `POST /apply-template` (llama-server's): the
prompt text a chat request (Ollama's body) would feed the model, rendered by the
model's worker with the code a chat renders with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from localllm.dialects.ollama import decode
from localllm.dialects.ollama.protocol import ChatBody
from localllm.dialects.wire import Services, parse
from localllm.hardware.report import HardwareReport
from localllm.workers.scheduler import Scheduler


class Extras:
    def __init__(
        self, services: Services, scheduler: Scheduler, hardware: Callable[[], HardwareReport]
    ) -> None:
        self.services = services
        self.scheduler = scheduler
        self.hardware = hardware
        """The machine's report, probed on each call (free memory changes)."""

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/apply-template", self.apply_template, methods=["POST"]),
            Route("/api/hardware", self.hardware_report, methods=["GET"]),
            Route("/api/fit", self.fit, methods=["GET"]),
        ]

    async def hardware_report(self, request: Request) -> Response:
        report = await asyncio.to_thread(self.hardware)
        return JSONResponse(report.to_dict())

    async def fit(self, request: Request) -> Response:
        catalog = self.services.catalog
        budget = await self.scheduler.budget()
        fits = await asyncio.to_thread(
            lambda: [catalog.fit(m, budget) for m in catalog.manifests()]
        )
        return JSONResponse({"models": fits})

    async def apply_template(self, request: Request) -> Response:
        body = await parse(request, ChatBody)
        prompt, tokens = await self.services.inference.count(decode.chat(body))
        return JSONResponse({"prompt": prompt, "tokens": tokens})
