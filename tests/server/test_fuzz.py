"""A bounded fuzz run against the real server and a real tiny model: a few hundred
mutated requests (fixed seed) to every endpoint, while an innocent stream on the
same model runs again and again. No 5xx, no hang, no dropped connection, and the
innocent stream gives exactly the text it gives alone. `benchmarks/fuzz.py` runs
the same requests by the thousand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from localllm.server.app import create_app
from localllm.server.scheduler import Scheduler
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.fakehub import FakeHub
from tests.fakehub import serve as serve_hub
from tests.fuzzing import fuzz
from tests.hardware.profiles import nvidia_laptop
from tests.hardware.recorded import report_of
from tests.server.conftest import BUDGET, add_model

pytestmark = pytest.mark.slow
INNOCENT = {
    "model": "tiny",
    "prompt": "Once upon a time",
    "raw": True,
    "options": {"temperature": 0, "num_predict": 60},
}


def innocent_text(url: str) -> str:
    with httpx.stream("POST", url + "/api/generate", json=INNOCENT, timeout=300) as response:
        lines = [json.loads(line) for line in response.iter_lines()]
    assert response.status_code == 200 and "error" not in lines[-1], lines[-1]
    return "".join(line.get("response", "") for line in lines)


@pytest.fixture
def fuzz_server(tmp_path: Path, tiny_files: dict[str, Path]) -> Iterator[str]:
    with serve_hub(FakeHub()) as hub:  # a Hub on loopback, with no repositories
        yield from _server(tmp_path, tiny_files, hub.url)


def _server(tmp_path: Path, tiny_files: dict[str, Path], hub: str) -> Iterator[str]:
    store = Store(tmp_path / "models")
    add_model(store, "tiny", tiny_files["tiny"], "PARAMETER num_ctx 1024\n")
    settings = ServerSettings(port=0)
    scheduler = Scheduler(settings, store, tmp_path / "logs", budget=lambda: BUDGET)
    laptop = report_of(nvidia_laptop())
    app = create_app(
        settings,
        store,
        tmp_path / "logs",
        scheduler=scheduler,
        hub_endpoint=hub,
        hardware=lambda: laptop,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_mutated_requests_get_no_5xx_and_spare_the_innocent_stream(fuzz_server: str) -> None:
    alone = innocent_text(fuzz_server)
    texts: list[str] = []
    finished = threading.Event()

    def innocent() -> None:
        while not finished.is_set():
            texts.append(innocent_text(fuzz_server))

    thread = threading.Thread(target=innocent)
    thread.start()
    try:
        tally = fuzz(fuzz_server, seed=14, count=240)
    finally:
        finished.set()
        thread.join(timeout=300)
    assert tally.server_errors == [] and tally.hangs == [] and tally.resets == []
    assert tally.total == 240 and tally.count(400, 500) > 100  # most were refused
    assert texts and all(t == alone for t in texts), (alone, texts)
    assert httpx.get(fuzz_server + "/api/version", timeout=30).status_code == 200
    assert innocent_text(fuzz_server) == alone  # the model still answers as before
