"""What the routes share, hung on the Starlette app."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from localllm.server.catalog import Catalog
from localllm.server.inference import Inference
from localllm.server.scheduler import Scheduler
from localllm.server.settings import ServerSettings
from localllm.store.store import Store


@dataclass
class AppState:
    settings: ServerSettings
    store: Store
    scheduler: Scheduler
    inference: Inference
    catalog: Catalog


def state(request: Request) -> AppState:
    value = request.app.state.localllm
    assert isinstance(value, AppState)
    return value
