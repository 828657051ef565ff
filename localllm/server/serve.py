"""Run the server in the foreground (`localllm serve`) until SIGTERM or SIGINT.

On a signal, streams in flight end with an error event at once (uvicorn would
otherwise wait for them), then every worker is stopped, so their memory goes
back to the system before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from localllm.server.app import create_app
from localllm.server.connections import http_config
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from localllm.workers.scheduler import Scheduler


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit: Any) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._on_exit)
        super().handle_exit(sig, frame)


def serve(
    settings: ServerSettings,
    store: Store,
    log_dir: Path,
    on_stop: Callable[[], None] = lambda: None,
) -> None:
    """Serve until a signal; `on_stop` runs as the server begins to shut down."""
    from localllm.store.egress import Egress

    settings.check()
    endpoint = os.environ.get("HF_ENDPOINT")
    Egress.for_endpoint(endpoint).install()  # every request this process sends, checked
    scheduler = Scheduler(settings, store, log_dir)
    app = create_app(settings, store, log_dir, scheduler=scheduler, hub_endpoint=endpoint)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _prune(store)
    config = http_config(
        app, settings, log_level="info", access_log=False, timeout_graceful_shutdown=5,
        lifespan="on",
    )  # fmt: skip

    def stopping() -> None:
        on_stop()
        scheduler.abort_all("the server is shutting down")

    server = _Server(config, stopping)
    print(f"localllm: listening on {settings.url} (pid {os.getpid()}); {exposure(settings)}",
          file=sys.stderr, flush=True)  # fmt: skip
    server.run()


def exposure(settings: ServerSettings) -> str:
    """What listening here exposes, said plainly at start."""
    from localllm.server.keys import KeyRing

    where = (
        "this machine only" if settings.loopback else f"every client that reaches {settings.host}"
    )
    keys = KeyRing.of(settings)
    if not keys.any():
        guard = "no API key asked" + ("" if settings.loopback else " (--insecure)")
    elif settings.require_keys or settings.api_key:
        guard = "an API key asked of every client"
    else:
        guard = "an API key asked beyond loopback"
    return f"the APIs of every local model to {where}, {guard}"


def _prune(store: Store) -> None:
    """What crashes and removals left in the store, cleared at start (as Ollama does),
    unless LOCALLLM_NOPRUNE=1."""
    if os.environ.get("LOCALLLM_NOPRUNE", "").strip() in ("1", "true", "on"):
        return
    from localllm.store.integrity import prune
    from localllm.units import format_bytes

    pruned = prune(store)
    if pruned.temporary or pruned.unused:
        logging.getLogger("localllm.server").info(
            "pruned %d temporary files of stopped processes and %d unused blobs (%s)",
            len(pruned.temporary), len(pruned.unused), format_bytes(pruned.bytes),
        )  # fmt: skip
