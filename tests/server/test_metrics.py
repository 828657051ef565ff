"""`GET /metrics` after real requests, read with Prometheus' own parser."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import Running

pytestmark = pytest.mark.slow


Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(server: Running) -> Samples:
    """{sample name: [(labels, value)]} of one scrape."""
    r = httpx.get(f"{server.url}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def test_requests_tokens_and_latency_after_real_requests(server: Running) -> None:
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 6, "temperature": 0}  # fmt: skip
    for _ in range(2):
        r = httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=120)
        assert r.status_code == 200
    generate = {"model": "tiny", "prompt": "Once", "stream": True,
                "options": {"num_predict": 5, "temperature": 0}}  # fmt: skip
    with httpx.stream("POST", f"{server.url}/api/generate", json=generate, timeout=120) as r:
        assert r.status_code == 200
        r.read()
    assert httpx.get(f"{server.url}/v1/responses/resp_nothing", timeout=30).status_code == 404
    m = scrape(server)
    chats = value(m, "localllm_requests_total", endpoint="/v1/chat/completions",
                  dialect="openai", status="200", key="-")  # fmt: skip
    assert chats == 2
    assert value(m, "localllm_requests_total", endpoint="/api/generate", dialect="ollama") == 1
    assert value(m, "localllm_requests_total", endpoint="/v1/responses/{id}",
                 status="404") == 1  # fmt: skip
    generated = value(m, "localllm_generated_tokens_total", model="tiny")
    assert 3 <= generated <= 17  # 2 x at most 6 and 5, end tokens allowed
    assert value(m, "localllm_prompt_tokens_total", model="tiny") > 0
    assert value(m, "localllm_time_to_first_token_seconds_count", model="tiny") == 3
    assert value(m, "localllm_queue_wait_seconds_count", model="tiny") == 3
    assert value(m, "localllm_models_loaded") == 1
    assert value(m, "localllm_model_loads_total") == 1
    assert value(m, "localllm_model_memory_bytes", model="tiny", kind="ram") > 0
    assert value(m, "localllm_kv_cells", model="tiny") >= 1024
    assert 0 < value(m, "localllm_kv_cells_used", model="tiny") <= value(m, "localllm_kv_cells")
    assert value(m, "localllm_streams_running", model="tiny") == 0
    assert value(m, "localllm_worker_deaths_total") == 0
    dashboard = (Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text()
    shown = set(re.findall(r"localllm_[a-z_]+", dashboard))
    assert shown and shown <= set(m), shown - set(m)  # every panel reads a real metric


def test_metrics_ask_for_the_key_beyond_loopback_like_everything(
    make_server: object, store: object
) -> None:
    from dataclasses import replace

    from localllm.server.settings import ServerSettings

    settings = replace(ServerSettings(port=0), api_key="secret")
    server = make_server(store, settings)  # type: ignore[operator]
    assert httpx.get(f"{server.url}/metrics", timeout=30).status_code == 401
    ok = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer secret"},
                   timeout=30)  # fmt: skip
    assert ok.status_code == 200 and "localllm_models_loaded" in ok.text
