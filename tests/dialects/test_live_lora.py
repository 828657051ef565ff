"""LoRA adapters chosen per request through the OpenAI dialect (llama-server's `lora`
field) on a real server: the Modelfile's by default, none, or one of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from localllm.store.store import Store
from tests.factory import TINY, write_lora
from tests.live_server import Running, add_model

pytestmark = pytest.mark.slow


def test_each_request_picks_its_adapters(
    make_server: Callable[..., Running], store: Store, tiny_files: dict[str, Path], tmp_path: Path
) -> None:
    adapters = [write_lora(TINY, tmp_path / f"a{i}.gguf", seed=i, strength=2.0) for i in range(2)]
    lines = "".join(f"ADAPTER {a}\n" for a in adapters)
    add_model(store, "tuned", tiny_files["tiny"], "PARAMETER num_ctx 1024\n" + lines)
    server = make_server(store)

    def complete(model: str, lora: object = None) -> str:
        body: dict[str, object] = {"model": model, "prompt": "Once upon a time",
                                   "max_tokens": 12, "temperature": 0,
                                   "ignore_eos": True}  # fmt: skip
        if lora is not None:
            body["lora"] = lora
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["text"])

    base = complete("tiny")
    assert complete("tuned", []) == base  # no adapter: the base model's answer
    first = complete("tuned", [{"id": 0, "scale": 1.0}])
    both = complete("tuned")  # the Modelfile's: both at scale 1
    assert len({base, first, both}) == 3
    assert complete("tuned", [{"id": 0}]) == first  # scale 1 by default
    bad = httpx.post(f"{server.url}/v1/completions", timeout=120, json={
        "model": "tuned", "prompt": "x", "lora": [{"id": 5, "scale": 1}]})  # fmt: skip
    assert bad.status_code == 400 and "lora.0.id" in bad.json()["error"]["message"]
    flood = httpx.post(f"{server.url}/v1/completions", timeout=120, json={
        "model": "tuned", "prompt": "x", "lora": [{"id": 0}] * 65})  # fmt: skip
    assert flood.status_code == 400 and "lora" in flood.json()["error"]["message"]
