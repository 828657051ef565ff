"""A model asked for with other load settings while it is busy: the reload waits for
its requests without holding the load lock (another model loads meanwhile), `ps` says
it waits, and the wait is bounded (503 with Retry-After)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localllm.store.store import Store
from tests.live_server import Running
from tests.server.test_robustness import LONG, _slow_store, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def busy(server: Running, store: Store, tiny_files: dict[str, Path]) -> Iterator[threading.Event]:
    """The slow model streaming a long answer until the event is set."""
    _slow_store(store, tiny_files)
    release = threading.Event()

    def hold() -> None:
        with httpx.stream("POST", server.url + "/api/generate", json=LONG, timeout=120) as r:
            for _ in r.iter_lines():
                if release.is_set():
                    return

    thread = threading.Thread(target=hold)
    thread.start()
    assert wait_for(lambda: "slow:latest" in server.scheduler.slots
                    and server.scheduler.in_flight("slow:latest") == 1, timeout=60)  # fmt: skip
    yield release
    release.set()
    thread.join(timeout=60)


def test_a_waiting_reload_blocks_no_other_model(server: Running, busy: threading.Event) -> None:
    server.scheduler.reload_wait_s = 120
    other_ctx = {"model": "slow", "prompt": "hi", "stream": False,
                 "options": {"num_ctx": 512, "num_predict": 2}}  # fmt: skip
    reloaded: list[httpx.Response] = []

    def reload() -> None:
        reloaded.append(httpx.post(server.url + "/api/generate", json=other_ctx, timeout=120))

    waiter = threading.Thread(target=reload)
    waiter.start()
    assert wait_for(lambda: server.scheduler.reloading.get("slow:latest") == 1, timeout=30)
    ps = httpx.get(server.url + "/api/ps").json()["models"]
    assert {m["name"]: m["reloading"] for m in ps}["slow:latest"] == 1
    tiny = {"model": "tiny", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    other = httpx.post(server.url + "/api/generate", timeout=60, json=tiny)
    assert other.status_code == 200  # loaded and answered while the reload waits
    assert waiter.is_alive()
    busy.set()
    waiter.join(timeout=120)
    assert reloaded[0].status_code == 200
    assert ("num_ctx", 512) in server.scheduler.slots["slow:latest"].key.options


def test_a_reload_waits_a_bounded_time(server: Running, busy: threading.Event) -> None:
    server.scheduler.reload_wait_s = 1
    answer = httpx.post(server.url + "/api/generate", timeout=60, json={
        "model": "slow", "prompt": "hi", "stream": False, "options": {"num_ctx": 512}})  # fmt: skip
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "loaded with other settings" in answer.json()["error"]
    assert server.scheduler.reloading == {}
