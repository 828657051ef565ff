"""No request can end a model's worker: everything a request brings is checked in the
server (400 naming the field), and what still fails in the worker ends that request
alone, while the model's other streams go on."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import Running, add_model

pytestmark = pytest.mark.slow
INNOCENT = {
    "model": "tiny",
    "prompt": "Once upon a time",
    "raw": True,
    "options": {"temperature": 0, "num_predict": 120, "seed": 1},
}
# The fuzzer's finds (each ended the worker before), and their neighbours.
BAD_FORMATS = [
    {"type": "object", "properties": {"a": "5m"}},
    {"type": "object", "properties": True},
    {"type": "object", "properties": {"a": 9223372036854775808}},
    {"$ref": "http://127.0.0.1:9/schema.json"},
]
LOOSENED = {"type": "array", "items": {"type": "string", "maxLength": 10**9}}
"""A JSON schema, but one no grammar can hold as it is: loosened, never refused."""


def generate_text(url: str, body: dict[str, Any]) -> str:
    lines = []
    with httpx.stream("POST", url + "/api/generate", json=body, timeout=120) as response:
        for line in response.iter_lines():
            lines.append(json.loads(line))
    assert "error" not in lines[-1], lines[-1]
    return "".join(chunk.get("response", "") for chunk in lines)


def worker_pid(server: Running) -> int | None:
    return server.scheduler.slots["tiny:latest"].runner.pid


def test_bad_requests_are_400s_and_never_touch_the_stream_beside_them(server: Running) -> None:
    alone = generate_text(server.url, INNOCENT)
    pid = worker_pid(server)
    together: list[str] = []
    thread = threading.Thread(target=lambda: together.append(generate_text(server.url, INNOCENT)))
    thread.start()
    answers = []
    for fmt in BAD_FORMATS:
        for path, body in (
            ("/api/generate", {"model": "tiny", "prompt": "x", "format": fmt}),
            ("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                           "format": fmt}),
            ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user",
                                      "content": "x"}], "response_format": {"type":
                                      "json_schema", "json_schema": {"schema": fmt}}}),
            ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user",
                                      "content": "x"}], "tool_choice": "required",
                                      "tools": [{"type": "function", "function": {"name": "f",
                                                 "parameters": fmt}}]}),
        ):  # fmt: skip
            answers.append(httpx.post(server.url + path, json=body, timeout=60))
    thread.join(timeout=120)
    assert together == [alone]
    assert worker_pid(server) == pid  # the same worker all along
    assert {r.status_code for r in answers} == {400}
    messages = [r.json()["error"] for r in answers]
    messages = [m["message"] if isinstance(m, dict) else m for m in messages]
    assert messages[0].startswith("format.properties.a: '5m' is not of type")
    assert messages[2].startswith("response_format.json_schema.schema.properties.a:")
    assert messages[3].startswith("tools.f.parameters.properties.a:")
    assert "only references inside" in messages[12]


def test_a_schema_no_grammar_can_hold_is_loosened_and_answered(server: Running) -> None:
    """Tools are prompt material (a schema is only a grammar for a forced call), and a
    schema a grammar cannot hold is loosened: neither is refused."""
    base = {"model": "tiny", "stream": False, "options": {"num_predict": 8, "seed": 1}}
    ask = [{"role": "user", "content": "x"}]
    schema = {"type": "object", "properties": {"a": LOOSENED, "b": {"description": "any"}}}
    loose_tool = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    for path, body in (
        ("/api/generate", {**base, "prompt": "x", "format": LOOSENED}),
        ("/api/chat", {**base, "messages": ask, "tools": [{"type": "function", "function": {
            "name": "f", "parameters": BAD_FORMATS[0]}}]}),
        ("/v1/chat/completions", {"model": "tiny", "messages": ask, "max_tokens": 8,
                                  "tool_choice": "required", "tools": loose_tool}),
    ):  # fmt: skip
        response = httpx.post(server.url + path, json=body, timeout=120)
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"num_thread": 10**6}, "options.num_thread"),
        ({"seed": 2**70}, "options.seed"),
        ({"repeat_last_n": 2**31 - 1}, "options.repeat_last_n"),
        ({"top_k": 2**40}, "options.top_k"),
        ({"stop": ["x"] * 100}, "options.stop"),
        ({"temperature": 1e308}, "options.temperature"),
    ],
)
def test_options_llama_cpp_cannot_take_are_400s_naming_them(
    server: Running, options: dict[str, Any], field: str
) -> None:
    body = {"model": "tiny", "prompt": "x", "stream": False, "options": options}
    response = httpx.post(server.url + "/api/generate", json=body, timeout=60)
    assert response.status_code == 400 and field in response.json()["error"], response.text


def test_nan_and_infinity_in_json_are_refused(server: Running) -> None:
    raw = b'{"model": "tiny", "prompt": "x", "options": {"temperature": NaN}}'
    response = httpx.post(server.url + "/api/generate", content=raw, timeout=60)
    assert response.status_code == 400 and "temperature" in response.text


def test_ignore_eos_with_a_format_is_refused_and_formats_still_work(server: Running) -> None:
    fmt = {"type": "object", "properties": {"a": {"const": "x"}}, "required": ["a"]}
    body = {"model": "tiny", "prompt": "x", "format": fmt, "stream": False,
            "options": {"ignore_eos": True, "num_predict": 50}}  # fmt: skip
    refused = httpx.post(server.url + "/api/generate", json=body, timeout=60)
    assert refused.status_code == 400 and "ignore_eos" in refused.json()["error"]
    ok = httpx.post(server.url + "/api/generate", json={**body, "options": {}}, timeout=120)
    assert ok.status_code == 200 and json.loads(ok.json()["response"]) == {"a": "x"}
    pid = worker_pid(server)
    assert generate_text(server.url, INNOCENT) and worker_pid(server) == pid


def test_create_and_keep_alive_values_that_once_were_500s(server: Running) -> None:
    create = {"model": "t2", "from": "tiny", "parameters": {"temperature": []}, "stream": False}
    response = httpx.post(server.url + "/api/create", json=create, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"] == "parameters.temperature: needs a value"
    for parameters in ({"stop": [["a"]]}, {"seed": {"a": 1}}, {"num_ctx": 10**30}):
        body = {**create, "parameters": parameters}
        response = httpx.post(server.url + "/api/create", json=body, timeout=60)
        assert response.status_code == 400, response.text
    wizard = {**create, "parameters": {}, "messages": [{"role": "wizard", "content": "x"}]}
    response = httpx.post(server.url + "/api/create", json=wizard, timeout=60)
    assert response.status_code == 400 and "messages[0].role" in response.json()["error"]
    load = {"model": "tiny", "keep_alive": "99999999999h"}
    assert httpx.post(server.url + "/api/generate", json=load, timeout=60).status_code == 200
    ps = httpx.get(server.url + "/api/ps", timeout=60)
    assert ps.status_code == 200 and ps.json()["models"][0]["name"] == "tiny:latest"


def test_keep_alive_zero_waits_for_the_streams_in_flight(
    server: Running, tiny_files: dict[str, Path]
) -> None:
    add_model(server.store, "slow", tiny_files["slow"], "PARAMETER num_ctx 4096\n")
    body = {
        "model": "slow",
        "prompt": "go",
        "options": {"temperature": 0, "num_predict": 400, "ignore_eos": True},
    }
    lines: list[dict[str, Any]] = []
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as response:
        for line in response.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 2:
                stop = httpx.post(
                    server.url + "/api/generate",
                    json={"model": "slow", "keep_alive": 0},
                    timeout=60,
                )
                assert stop.json()["done_reason"] == "unload"
                assert "slow:latest" in server.scheduler.slots  # still serving the stream
    assert lines[-1]["done"] and "error" not in lines[-1], lines[-1]
    assert lines[-1]["eval_count"] == 400
    assert "slow:latest" not in server.scheduler.slots  # unloaded once it ended


def test_show_checks_and_shows_ollamas_older_fields(server: Running) -> None:
    show = server.url + "/api/show"
    for bad, field in (
        ({"options": {"temperature": []}}, "options.temperature"),
        ({"options": {"num_ctx": 10**12}}, "options.num_ctx"),
        ({"template": "{{ if .System }}"}, "template"),
    ):
        response = httpx.post(show, json={"model": "tiny", **bad}, timeout=60)
        assert response.status_code == 400 and field in response.json()["error"], response.text
    good = {"model": "tiny", "system": "Be terse.", "options": {"temperature": 0.25}}
    shown = httpx.post(show, json=good, timeout=60).json()
    assert shown["system"] == "Be terse." and "temperature 0.25" in shown["parameters"]
