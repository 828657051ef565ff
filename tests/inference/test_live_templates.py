"""Go templates end to end: a model created with one of Ollama's templates feeds the
model exactly the text Ollama's testdata expects, as `/apply-template` shows and a
chat's prompt token count confirms."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.live_server import Running
from tests.templates.test_ollama_suite import CASES, DATA

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["chatml.gotmpl", "llama3-instruct.gotmpl", "alpaca.gotmpl"])
def test_a_modelfile_go_template_renders_as_ollama_renders_it(server: Running, name: str) -> None:
    template = (DATA / name).read_text()
    create = {"model": "go-tmpl", "from": "tiny", "template": template, "stream": False}
    assert httpx.post(server.url + "/api/create", json=create, timeout=60).status_code == 200
    shown = httpx.post(server.url + "/api/show", json={"model": "go-tmpl"}, timeout=60).json()
    assert shown["template"] == template  # kept as written
    for case, messages in CASES.items():
        body = {"model": "go-tmpl", "messages": messages}
        rendered = httpx.post(server.url + "/apply-template", json=body, timeout=60).json()
        assert rendered["prompt"] == (DATA / "expected" / name / case).read_text()
    chat = {"model": "go-tmpl", "messages": CASES["user"], "stream": False,
            "options": {"num_predict": 1}}  # fmt: skip
    answer = httpx.post(server.url + "/api/chat", json=chat, timeout=60).json()
    body = {"model": "go-tmpl", "messages": CASES["user"]}
    rendered = httpx.post(server.url + "/apply-template", json=body, timeout=60).json()
    assert answer["prompt_eval_count"] == rendered["tokens"]


def test_apply_template_errors_are_4xx(server: Running, tmp_path: Path) -> None:
    missing = httpx.post(server.url + "/apply-template", json={"model": "nope"}, timeout=60)
    assert missing.status_code == 404
    bad = {"model": "go-bad", "from": "tiny", "template": "{{ range .Messages }}", "stream": False}
    refused = httpx.post(server.url + "/api/create", json=bad, timeout=60)
    assert refused.status_code == 400 and "unexpected EOF" in refused.json()["error"]
