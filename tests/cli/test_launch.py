"""`localllm launch`: the settings each app gets (pure; the apps themselves run in
`benchmarks/apps.py`)."""

from __future__ import annotations

import argparse
import json

import pytest

from localllm.cli.launch import _parsed, setup

URL = "http://127.0.0.1:11435"


def test_claude_code_is_pointed_at_the_server_with_a_stable_prefix() -> None:
    plan = setup("claude", URL, "qwen3:latest", 32768, None)
    assert plan.command == ["claude", "--model", "qwen3:latest"]
    assert plan.env["ANTHROPIC_BASE_URL"] == URL
    assert plan.env["CLAUDE_CODE_ATTRIBUTION_HEADER"] == "0"  # the KV cache is reused
    assert plan.env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "32768"
    assert int(plan.env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"]) <= 32768 // 4


def test_codex_gets_a_provider_on_the_responses_wire() -> None:
    plan = setup("codex", URL, "qwen3:latest", 32768, "secret")
    overrides = dict(a.split("=", 1) for a in plan.command[2::2])
    assert plan.command[1::2] == ["-c"] * len(overrides)
    assert overrides["model_providers.localllm.base_url"] == json.dumps(f"{URL}/v1")
    assert overrides["model_providers.localllm.wire_api"] == "responses"
    assert overrides["model_context_window"] == "32768"
    assert plan.env["LOCALLLM_API_KEY"] == "secret"


def test_opencode_and_continue_state_the_context_window() -> None:
    config = json.loads(
        setup("opencode", URL, "m:latest", 8192, None).env["OPENCODE_CONFIG_CONTENT"]
    )
    model = config["provider"]["localllm"]["models"]["m:latest"]
    assert model["limit"]["context"] == 8192 and config["model"] == "localllm/m:latest"
    text = setup("continue", URL, "m:latest", 8192, None, "/data/launch/continue.yaml")
    assert text.command == ["cn", "--config", "/data/launch/continue.yaml"]
    assert "schema: v1" in text.config and "contextLength: 8192" in text.config


def test_the_apps_own_arguments_come_after_a_double_dash() -> None:
    args = argparse.Namespace(app="codex", model=None, config=False,
                              rest=["-m", "m", "--", "exec", "--model", "x"])  # fmt: skip
    assert _parsed(args) == ("m", False, ["exec", "--model", "x"])
    with pytest.raises(SystemExit):
        _parsed(argparse.Namespace(app="codex", model=None, config=False, rest=[]))
