"""The Ollama API through the official `ollama` client, with real inference."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from localllm import __version__
from tests.live_server import Running

pytestmark = pytest.mark.slow


def test_version_tags_show(server: Running) -> None:
    client = ollama.Client(host=server.url)
    listed = client.list().models
    assert {m.model for m in listed} == {"tiny:latest", "other:latest"}
    tags = httpx.get(f"{server.url}/api/tags").json()["models"]
    assert all("completion" in m["capabilities"] for m in tags)
    version = httpx.get(f"{server.url}/api/version").json()
    # what apps compare: Codex asks for Ollama >= 0.13.4, Copilot >= 0.6.4
    assert tuple(int(x) for x in version["version"].split(".")) >= (0, 13, 4)
    assert version["localllm"]["version"] == __version__
    shown = client.show("tiny")
    assert shown.details is not None and shown.details.family == "llama"
    assert {"completion", "embedding"} <= set(shown.capabilities or [])
    assert shown.modelfile is not None and "num_ctx 1024" in shown.modelfile


def test_chat_streams_and_reports_counts(server: Running) -> None:
    client = ollama.Client(host=server.url)
    messages = [{"role": "user", "content": "Hello"}]
    chunks = list(
        client.chat(
            "tiny",
            messages=messages,
            stream=True,
            options={"seed": 1, "num_predict": 12, "temperature": 0},
        )
    )
    assert chunks[-1].done and chunks[-1].done_reason in ("stop", "length")
    assert (chunks[-1].eval_count or 0) >= len(chunks) - 1
    assert (chunks[-1].prompt_eval_count or 0) > 0
    assert (chunks[-1].eval_duration or 0) > 0
    streamed = "".join(c.message.content or "" for c in chunks)
    whole = client.chat(
        "tiny", messages=messages, options={"seed": 1, "num_predict": 12, "temperature": 0}
    )
    assert whole.message.content == streamed


def test_generate_and_structured_output(server: Running) -> None:
    client = ollama.Client(host=server.url)
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}},
        "required": ["n", "ok"],
    }
    out = client.generate(
        "tiny", "Give JSON", format=schema, options={"seed": 3, "num_predict": 200}
    )
    value = json.loads(out.response or "")
    assert isinstance(value["n"], int) and isinstance(value["ok"], bool)


def test_embed(server: Running) -> None:
    client = ollama.Client(host=server.url)
    out = client.embed("tiny", input=["one", "two"])
    assert len(out.embeddings) == 2 and len(out.embeddings[0]) == 64
    assert abs(sum(v * v for v in out.embeddings[0]) - 1.0) < 1e-3


def test_shift_lets_an_answer_run_past_its_context(server: Running) -> None:
    import httpx

    options = {"num_ctx": 256, "num_predict": 400, "temperature": 0, "seed": 1}
    body = {"model": "tiny", "prompt": "Once", "stream": False, "options": options}
    short = httpx.post(server.url + "/api/generate", json=body, timeout=120).json()
    assert short["done_reason"] == "length" and short["eval_count"] < 256
    body["options"] = {**options, "num_keep": 2}
    long = httpx.post(server.url + "/api/generate", json={**body, "shift": True}, timeout=120)
    assert long.status_code == 200, long.text
    assert long.json()["eval_count"] == 400


def test_prompt_lookup_changes_no_greedy_answer(server: Running) -> None:
    client = ollama.Client(host=server.url)
    options = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 60, "seed": 1}
    prompt = "a b c a b c a b c"
    guessed = client.generate("tiny", prompt, options=options)
    plain = client.generate("tiny", prompt, options={**options, "prompt_lookup": False})
    assert guessed.response == plain.response and guessed.eval_count == plain.eval_count
    with pytest.raises(ollama.ResponseError, match="prompt_lookup"):
        client.generate("tiny", prompt, options={"prompt_lookup": "maybe"})
