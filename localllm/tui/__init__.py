"""The Textual chat: `localllm run MODEL` and `localllm` alone.

Everything here talks to the server through `localllm.client.AsyncClient`
(the one streaming path) and keeps chats in `localllm.history`. Textual is
imported only when the app starts, so other commands never pay for it.
"""

from __future__ import annotations

from pathlib import Path


def run_app(url: str, api_key: str | None, history_path: Path, model: str | None) -> None:
    """Run the full-screen app until the user quits; `model`: open a new chat with it,
    else the home (recent chats)."""
    from localllm.tui.app import LocalLLMApp

    LocalLLMApp(url, api_key, history_path, model).run()
