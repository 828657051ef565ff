"""Reasoning ("thinking") text apart from the answer, as the CLI and the TUI read it.

The server splits a model's thinking from its answer (`localllm.formats`) and
sends it as Ollama's `message.thinking`; `chunk_parts` reads those fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Part = tuple[Literal["thinking", "content"], str]


def chunk_parts(chunk: Mapping[str, Any]) -> list[Part]:
    """The parts of one streamed `/api/chat` chunk, as the server split them: its
    `message.thinking`, then its `message.content`."""
    message = chunk.get("message") or {}
    parts: list[Part] = []
    if message.get("thinking"):
        parts.append(("thinking", str(message["thinking"])))
    if message.get("content"):
        parts.append(("content", str(message["content"])))
    return parts
