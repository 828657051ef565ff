"""The Starlette application: routes of both APIs behind the security middleware."""

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

from localllm.errors import LocalLLMError
from localllm.hardware.report import HardwareReport
from localllm.server import anthropic, blobs, extras, ollama, openai, responses
from localllm.server.access_log import AccessLogMiddleware
from localllm.server.catalog import Catalog
from localllm.server.errors import error_body, handle
from localllm.server.inference import Inference
from localllm.server.limits import LimitsMiddleware
from localllm.server.security import SecurityMiddleware, origin_regex
from localllm.server.settings import ServerSettings
from localllm.server.state import AppState
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
    app_state = AppState(
        settings=settings,
        store=store,
        scheduler=scheduler,
        inference=Inference(scheduler, store, settings),
        catalog=Catalog(store, scheduler, hub_endpoint, settings.allow_files),
        hardware=hardware or _detect,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        scheduler.abort_all("the server is shutting down")
        scheduler.shutdown()

    app = Starlette(
        routes=[
            *ollama.ROUTES,
            *blobs.ROUTES,
            *openai.ROUTES,
            *responses.ROUTES,
            *anthropic.ROUTES,
            *extras.ROUTES,
        ],
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(SecurityMiddleware, settings=settings),
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
    app.state.localllm = app_state
    return app
