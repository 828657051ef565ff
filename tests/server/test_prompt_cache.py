"""The prompt cache that outlives a model's worker: a long prefix saved when the model
unloads and when the server stops, loaded again for a prompt that starts with it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from localllm.engine.prompt_cache import MIN_TOKENS, prune
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import Running

pytestmark = pytest.mark.slow
SYSTEM = " ".join(f"t{i % 97}" for i in range(100))  # about 600 tokens of this vocabulary


def cached(server: Running, question: str) -> tuple[int, int]:
    """(prompt tokens, of them cached) of a chat that starts with SYSTEM."""
    body = {"model": "tiny", "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": question}]}  # fmt: skip
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    return usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]


def saved(folder: Path, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := sorted(folder.glob("*/*.state")):
            return found
        time.sleep(0.1)
    return []


def test_a_prefix_survives_an_unload_and_a_restart(
    make_server: Callable[..., Running], store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "prompts"
    settings = ServerSettings(port=0, prompt_cache_dir=folder)
    server = make_server(store, settings)
    total, hits = cached(server, "first?")
    assert total > MIN_TOKENS and hits == 0
    assert cached(server, "second?")[1] > MIN_TOKENS  # warm: the slot held it
    assert server.scheduler.unload("tiny:latest")
    files = saved(folder)
    assert len(files) == 1 and files[0].with_name(files[0].stem + ".tokens.json").exists()
    assert cached(server, "third?")[1] > MIN_TOKENS  # a new worker, the prefix loaded
    server.server.should_exit = True  # the server stops: its worker saves what it holds
    time.sleep(0.5)
    again = make_server(store, replace(settings, port=0))
    assert cached(again, "fourth?")[1] > MIN_TOKENS


def test_without_a_folder_nothing_is_kept(
    make_server: Callable[..., Running], store: Store, tmp_path: Path
) -> None:
    server = make_server(store, ServerSettings(port=0, prompt_cache_dir=None))
    cached(server, "first?")
    assert server.scheduler.unload("tiny:latest")
    assert cached(server, "second?")[1] == 0


def test_the_cache_stays_under_its_size(tmp_path: Path) -> None:
    for i, size in enumerate((300, 300, 300)):
        model = tmp_path / f"m{i}"
        model.mkdir()
        (model / "a.state").write_bytes(b"x" * size)
        (model / "a.tokens.json").write_text("[1]")
        stamp = time.time() - 100 + i  # m0 oldest
        os.utime(model / "a.state", (stamp, stamp))
    prune(tmp_path, 700)
    left = sorted(p.parent.name for p in tmp_path.glob("*/*.state"))
    assert left == ["m1", "m2"] and not (tmp_path / "m0" / "a.tokens.json").exists()
