"""Copies of a model, one per GPU (`LOCALLLM_REPLICAS`): planned and pinned one GPU
each, requests balanced across them, unloaded together. The GPUs are a given budget
(two pretend 8 GiB cards); the copies are real worker processes on this CPU."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from localllm.planner.budget import GpuBudget
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import BUDGET, GIB, Running, add_model

pytestmark = pytest.mark.slow
TWO_GPUS = replace(BUDGET, gpus=tuple(
    GpuBudget(index=i, name=f"Pretend GPU {i}", vendor="nvidia", backend="cuda", total=8 * GIB,
              free=8 * GIB, usable=7 * GIB, unified=False, bandwidth_gbs=500.0)
    for i in range(2)
))  # fmt: skip
BODY = {"model": "tiny", "prompt": "Once upon a time", "stream": False,
        "options": {"num_predict": 12, "temperature": 0}}  # fmt: skip


def test_two_copies_one_per_gpu_share_the_requests(
    store: Store, make_server: Callable[..., Running], tiny_files: dict[str, Path]
) -> None:
    # One slot per copy: a whole 8,192-token context, so the long answers below run on.
    server = make_server(store, ServerSettings(port=0, replicas=2, num_parallel=1), TWO_GPUS)
    first = httpx.post(server.url + "/api/generate", json=BODY, timeout=60)
    assert first.status_code == 200
    scheduler = server.scheduler
    primary = scheduler.slots["tiny:latest"]
    (copy,) = scheduler.copies["tiny:latest"]
    assert primary.runner.load_request.settings.devices == (0,)
    assert copy.runner.load_request.settings.devices == (1,)
    assert {p.device for p in primary.placement} >= {"Pretend GPU 0"}
    assert {p.device for p in copy.placement} >= {"Pretend GPU 1"}

    # Two long answers at once, from the slow model: each copy takes one.
    add_model(store, "slow", tiny_files["slow"], "PARAMETER num_ctx 8192\n")
    long = {
        "model": "slow",
        "prompt": "go",
        "options": {"num_predict": 8000, "temperature": 1, "ignore_eos": True},
    }
    with (
        httpx.stream("POST", server.url + "/api/generate", json=long, timeout=60) as a,
        httpx.stream("POST", server.url + "/api/generate", json=long, timeout=60) as b,
    ):
        # Keep the line iterators: a dropped one closes its stream (the client leaves).
        ia, ib = a.iter_lines(), b.iter_lines()
        next(ia), next(ib)
        slow = [server.scheduler.slots["slow:latest"], *server.scheduler.copies["slow:latest"]]
        assert [s.runner.in_flight for s in slow] == [1, 1]
        ps = httpx.get(server.url + "/api/ps", timeout=30).json()["models"]
        assert {m["name"]: len(m["copies"]) for m in ps} == {"tiny:latest": 1, "slow:latest": 1}

    again = [httpx.post(server.url + "/api/generate", json=BODY, timeout=60).json()["response"]
             for _ in range(2)]  # fmt: skip
    assert again == [first.json()["response"]] * 2
    gone = httpx.post(server.url + "/api/generate", json={"model": "tiny", "keep_alive": 0},
                      timeout=60)  # fmt: skip
    assert gone.status_code == 200
    assert "tiny:latest" not in scheduler.slots and "tiny:latest" not in scheduler.copies
    assert primary.runner.dead and copy.runner.dead


def test_one_copy_unless_asked(store: Store, make_server: Callable[..., Running]) -> None:
    server = make_server(store, ServerSettings(port=0), TWO_GPUS)
    assert httpx.post(server.url + "/api/generate", json=BODY, timeout=60).status_code == 200
    assert not server.scheduler.copies.get("tiny:latest")
    assert (
        json.dumps(server.scheduler.slots["tiny:latest"].runner.load_request.settings.devices)
        == "[]"
    )


def test_a_queue_on_one_copy_brings_the_suggestion_of_more(
    store: Store, make_server: Callable[..., Running], tiny_files: dict[str, Path]
) -> None:
    add_model(store, "slow", tiny_files["slow"], "PARAMETER num_ctx 8192\n")
    server = make_server(store, ServerSettings(port=0, num_parallel=1), TWO_GPUS)
    long = {
        "model": "slow",
        "prompt": "go",
        "options": {"num_predict": 8000, "temperature": 1, "ignore_eos": True},
    }

    def second() -> None:  # its answer starts once the first one's slot is free
        with httpx.stream("POST", server.url + "/api/generate", json=long, timeout=120) as b:
            next(b.iter_lines())

    waiting = threading.Thread(target=second)
    with httpx.stream("POST", server.url + "/api/generate", json=long, timeout=60) as a:
        ia = a.iter_lines()
        next(ia)
        quiet = httpx.get(server.url + "/api/ps", timeout=30).json()["models"]
        assert quiet[0]["tip"] is None  # one request, one slot: no queue
        waiting.start()
        while server.scheduler.in_flight("slow:latest") < 2:
            time.sleep(0.01)  # until the second is admitted (it waits for the slot)
        (model,) = httpx.get(server.url + "/api/ps", timeout=30).json()["models"]
    waiting.join(timeout=120)
    assert model["tip"] == (
        "1 request waiting for a slot; the model fits on one GPU and 2 GPUs have room for a "
        "copy each: LOCALLLM_REPLICAS=2 would serve them side by side"
    )
