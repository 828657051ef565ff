"""What the routes share, hung on the Starlette app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from localllm.hardware.report import HardwareReport
from localllm.server.catalog import Catalog
from localllm.server.inference import Inference
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from localllm.workers.scheduler import Scheduler


@dataclass
class AppState:
    settings: ServerSettings
    store: Store
    scheduler: Scheduler
    inference: Inference
    catalog: Catalog
    hardware: Callable[[], HardwareReport]
    """The machine's report, probed on each call (free memory changes)."""


def state(request: Request) -> AppState:
    value = request.app.state.localllm
    assert isinstance(value, AppState)
    return value
