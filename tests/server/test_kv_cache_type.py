"""A model's KV cache type (`PARAMETER kv_cache_type`, `LOCALLLM_KV_CACHE_TYPE`) on a
real server: loaded so, and answering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import Running, add_model

pytestmark = pytest.mark.slow


def loaded_type(server: Running, name: str) -> tuple[str, str]:
    settings = server.scheduler.slots[name].runner.load_request.settings
    return settings.type_k, settings.type_v


def ask(server: Running, model: str) -> None:
    body = {"model": model, "prompt": "Once", "stream": False,
            "options": {"num_predict": 4, "temperature": 0}}  # fmt: skip
    r = httpx.post(f"{server.url}/api/generate", json=body, timeout=120)
    assert r.status_code == 200 and r.json()["eval_count"] >= 1


def test_the_modelfile_and_the_server_default_choose_the_cache(
    make_server: Callable[..., Running], tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    store = Store(tmp_path / "models")
    add_model(store, "asked", tiny_files["slow"], "PARAMETER num_ctx 512\n"
              "PARAMETER kv_cache_type q8_0\n")  # fmt: skip
    add_model(store, "plain", tiny_files["slow"], "PARAMETER num_ctx 512\n")
    server = make_server(store, ServerSettings(port=0, kv_cache_type="q4_0"))
    ask(server, "asked")
    ask(server, "plain")
    assert loaded_type(server, "asked:latest") == ("q8_0", "q8_0")  # the Modelfile's
    assert loaded_type(server, "plain:latest") == ("q4_0", "q4_0")  # the server's default


def test_a_bad_kv_cache_type_is_refused_at_create(server: Running) -> None:
    body = {"model": "x", "from": "tiny", "parameters": {"kv_cache_type": "q3"}}
    r = httpx.post(f"{server.url}/api/create", json=body, timeout=60)
    assert r.status_code == 400 and "kv_cache_type" in r.json()["error"]
