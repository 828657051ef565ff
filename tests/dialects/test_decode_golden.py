"""Captured requests of real clients (`capture.py`: the official openai, anthropic and
ollama Python SDKs, Claude Code, Codex), each decoded by its dialect to the core's
`ChatRequest`, compared with the reviewed golden file. No server, no model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from localllm.constraints.grammar import HERMES, tool_call_grammar
from localllm.dialects.anthropic import decode as anthropic_decode
from localllm.dialects.anthropic.protocol import MessagesBody
from localllm.dialects.ollama import decode as ollama_decode
from localllm.dialects.ollama.protocol import ChatBody
from localllm.dialects.openai import decode as openai_decode
from localllm.dialects.openai.protocol import ChatCompletionBody
from localllm.dialects.openai.responses import decode as responses_decode
from localllm.dialects.openai.responses.protocol import ResponsesBody
from localllm.dialects.wire import describe_validation
from localllm.errors import APIError
from localllm.inference import recipe
from localllm.inference.request import ChatRequest
from localllm.store.manifests import Layer, Manifest
from tests.dialects.golden import GOLDEN, check_json

DECODERS: dict[str, Callable[[bytes], ChatRequest]] = {
    "/v1/messages": lambda b: anthropic_decode.request(MessagesBody.model_validate_json(b)),
    "/v1/chat/completions": lambda b: openai_decode.chat(ChatCompletionBody.model_validate_json(b)),
    "/v1/responses": lambda b: responses_decode.request(ResponsesBody.model_validate_json(b)),
    "/api/chat": lambda b: ollama_decode.chat(ChatBody.model_validate_json(b)),
}
CAPTURED = sorted((GOLDEN / "requests").glob("*.json"))


def decoded(path: Path) -> Any:
    captured = json.loads(path.read_text())
    try:
        return DECODERS[captured["path"]](json.dumps(captured["body"]).encode())
    except ValidationError as exc:  # what `wire.parse` answers
        return {"status": 400, "error": describe_validation(exc)}
    except APIError as exc:
        return {"status": exc.status, "error": str(exc)}


@pytest.mark.parametrize("path", CAPTURED, ids=[p.stem for p in CAPTURED])
def test_a_real_client_request_decodes_to_its_golden_chat_request(path: Path) -> None:
    check_json(f"decoded/{path.stem}.json", decoded(path))


def test_every_client_was_captured() -> None:
    names = {p.stem for p in CAPTURED}
    assert {
        "claude-code",
        "codex",
        "openai-python-chat",
        "openai-python-responses",
        "anthropic-python",
        "ollama-python",
    } <= names


AGENT_TEMPLATE = (
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    "{% if tools %}{{ tools | tojson }}{% endif %}"
)
MODEL = Manifest("m:latest", Layer("sha256-" + "0" * 64, 1))


@pytest.mark.parametrize("name", ["claude-code", "codex"])
def test_an_agents_first_request_makes_a_worker_request(name: str) -> None:
    """The agents' tools are prompt material: their schemas (Claude Code's strings of
    524,288 characters, properties with only a description) never refuse the request,
    and a forced call still gets a grammar, loosened where a grammar cannot hold them."""
    request = decoded(GOLDEN / "requests" / f"{name}.json")
    assert isinstance(request, ChatRequest)
    made = recipe.chat(request, MODEL, AGENT_TEMPLATE, ())
    assert len(made.generate.tools) >= 10
    assert tool_call_grammar(made.generate.tools, HERMES).startswith("root ::=")
