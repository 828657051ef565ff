"""`localllm ps`'s table, from what the server's `/api/ps` says (the server itself is
tested live in `test_server_cli.py`): a model loaded the careful way says so."""

from __future__ import annotations

import argparse
from types import TracebackType
from typing import Any

import pytest

from localllm.cli import server as cli_server

MODEL = {"name": "tiny:latest", "size": 1 << 20, "size_vram": 0, "context_length": 4096,
         "parallel": 4, "expires_at": "2026-12-07T01:00:00Z"}  # fmt: skip


class Answers:
    """What a server answered, as `localllm.client.Client` returns it."""

    def __init__(self, models: list[dict[str, Any]]) -> None:
        self.models = models

    def __enter__(self) -> Answers:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def ps(self) -> list[dict[str, Any]]:
        return self.models

    def workers(self) -> list[dict[str, Any]]:
        return []


def table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], model: dict[str, Any]
) -> str:
    monkeypatch.setattr(cli_server, "client", lambda: Answers([model]))
    assert cli_server.run_ps(argparse.Namespace(json=False)) == 0
    return capsys.readouterr().out


def test_a_model_loaded_without_repacking_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = table(monkeypatch, capsys, {**MODEL, "fallback": "weight repacking off"})
    assert "tiny" in out and "100% CPU" in out
    assert "loaded with weight repacking off: llama.cpp crashed loading it otherwise" in out


def test_a_model_loaded_the_usual_way_says_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = table(monkeypatch, capsys, {**MODEL, "fallback": ""})
    assert "tiny" in out and "loaded with" not in out
