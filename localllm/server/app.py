"""The Starlette application: every dialect's routes over the same services, behind the
access log, the security checks and the limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from localllm.dialects.wire import Services
from localllm.errors import LocalLLMError
from localllm.hardware.report import HardwareReport
from localllm.inference.conversations import Conversations
from localllm.inference.service import Inference
from localllm.models.catalog import Catalog
from localllm.models.changes import Changes
from localllm.server.access_log import AccessLogMiddleware
from localllm.server.dialects import DIALECTS
from localllm.server.errors import error_body, handle
from localllm.server.extras import Extras
from localllm.server.keys import KeyRing, Limiter
from localllm.server.limits import LimitsMiddleware
from localllm.server.metrics import Metrics
from localllm.server.security import SecurityMiddleware, origin_regex
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from localllm.workers.scheduler import Scheduler


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no route {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        error_body(request.url.path, exc.status_code, message), status_code=exc.status_code
    )


def _detect() -> HardwareReport:
    from localllm.hardware import detect_live

    return detect_live()


def create_app(
    settings: ServerSettings,
    store: Store,
    log_dir: Path,
    scheduler: Scheduler | None = None,
    hub_endpoint: str | None = None,
    hardware: Callable[[], HardwareReport] | None = None,
) -> Starlette:
    """The app; `scheduler` and `hardware` may be given (tests pass a small budget and
    a recorded machine)."""
    scheduler = scheduler or Scheduler(settings, store, log_dir)
    services = Services(
        inference=Inference(scheduler, store, settings.keep_alive_s, settings.image_urls),
        catalog=Catalog(store, scheduler),
        changes=Changes(store, scheduler, hub_endpoint, settings.allow_files),
        conversations=Conversations(store.root.parent / "responses"),
    )
    metrics = Metrics(scheduler, services.catalog)
    keys, limiter = KeyRing.of(settings), Limiter()
    routes = [route for dialect in DIALECTS for route in dialect.routes(services)]
    routes += Extras(services, scheduler, hardware or _detect).routes()
    routes += metrics.routes()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        scheduler.abort_all("the server is shutting down")
        scheduler.shutdown()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessLogMiddleware, observers=[metrics.observe, limiter.observe]),
            Middleware(SecurityMiddleware, settings=settings, keys=keys, limiter=limiter),
            Middleware(LimitsMiddleware, settings=settings),
            Middleware(
                CORSMiddleware,
                allow_origin_regex=origin_regex(settings.origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS", "HEAD"],
                allow_headers=["*"],
            ),
        ],
        exception_handlers={HTTPException: _http_error, LocalLLMError: handle, Exception: handle},
        lifespan=lifespan,
    )
    return app
