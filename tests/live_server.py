"""A real server on 127.0.0.1 (a free port) over a store of tiny generated models: the
fixtures of every end-to-end test (a pytest plugin of `tests/conftest.py`).

The server runs in a thread of the test process (uvicorn, the real app and
scheduler); each model it loads runs in its own worker process with real
llama.cpp inference. The machine budget is given (no detection): 16 GiB of
RAM and no GPU, unless a test passes a smaller one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from localllm.planner.budget import Budget
from localllm.server.app import create_app
from localllm.server.connections import http_config
from localllm.server.settings import ServerSettings
from localllm.store.create import create
from localllm.store.modelfile import parse_modelfile
from localllm.store.names import parse_name
from localllm.store.store import Store
from localllm.workers.scheduler import Scheduler

GIB = 1 << 30
BUDGET = Budget(
    gpus=(),
    ram_total=24 * GIB,
    ram_available=20 * GIB,
    ram_usable=16 * GIB,
    cpu_bandwidth_gbs=20.0,
    threads=2,
    repack=True,
)


def add_model(store: Store, name: str, path: Path, modelfile_extra: str = "") -> None:
    def no_planning(sources: object) -> object:
        raise AssertionError("a local file needs no plan")

    modelfile = parse_modelfile(f"FROM {path}\n{modelfile_extra}")
    create(parse_name(name), modelfile, store, path.parent, no_planning)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path, tiny_files: dict[str, Path]) -> Store:
    store = Store(tmp_path / "models")
    add_model(store, "tiny", tiny_files["tiny"], "PARAMETER num_ctx 1024\n")
    add_model(store, "other", tiny_files["other"], "PARAMETER num_ctx 1024\n")
    return store


@dataclass
class Running:
    url: str
    settings: ServerSettings
    store: Store
    scheduler: Scheduler
    server: uvicorn.Server

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


def start_server(
    store: Store,
    log_dir: Path,
    settings: ServerSettings | None = None,
    budget: Budget = BUDGET,
    **app_options: Any,
) -> tuple[Running, threading.Thread]:
    """`app_options`: `create_app`'s `hub_endpoint` and `hardware`."""
    settings = settings or ServerSettings(port=0)
    scheduler = Scheduler(settings, store, log_dir, budget=lambda: budget)
    app = create_app(settings, store, log_dir, scheduler=scheduler, **app_options)
    config = http_config(app, settings, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    running = Running(
        f"http://127.0.0.1:{port}", replace(settings, port=port), store, scheduler, server
    )
    return running, thread


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[tuple[Running, threading.Thread]] = []

    def make(
        store: Store, settings: ServerSettings | None = None, budget: Budget = BUDGET
    ) -> Running:
        running, thread = start_server(store, tmp_path / "logs", settings, budget)
        started.append((running, thread))
        return running

    yield make
    for running, thread in started:
        running.server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def server(make_server: Callable[..., Running], store: Store) -> Running:
    return make_server(store)
