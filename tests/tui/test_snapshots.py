"""SVG snapshots of the chat, models and help screens (pytest-textual-snapshot).

Everything on them is fixed: a seeded chat (no live answer), the recorded
laptop's hardware, the test budget's fit. `pytest --snapshot-update` rewrites
them after a deliberate change to the look; review the SVGs in the diff.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from localllm.history.store import ChatStore, Message
from localllm.tui.app import LocalLLMApp
from localllm.tui.chat import ChatScreen
from localllm.tui.models import ModelsScreen
from tests.tui.conftest import settled, wait_for

pytestmark = pytest.mark.slow

ANSWER = """\
Here is a function that adds two numbers:

```python
def add(a: int, b: int) -> int:
    return a + b
```

- It takes **two** integers.
- It returns their sum.
"""


def seeded_chat(path: Path) -> None:
    with ChatStore(path, clock=lambda: 1_700_000_000.0) as store:
        chat = store.create("tiny", system="Be brief.", options={"num_ctx": 1024})
        store.add(
            chat.id,
            Message("user", "Write an add function in Python."),
            Message(
                "assistant",
                ANSWER,
                "The user wants a small function.",
                {"eval_count": 42, "tokens_per_s": 51.3, "ttft_s": 0.21, "model": "tiny"},
            ),
        )


def test_chat_screen(
    snap_compare: Any, make_app: Callable[..., LocalLLMApp], tmp_path: Path
) -> None:
    seeded_chat(tmp_path / "history.db")
    app = make_app(None)

    async def open_chat(pilot: Pilot[None]) -> None:
        await wait_for(pilot.pause, lambda: app.screen.query(DataTable))
        await pilot.press("enter")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatScreen))
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        # loaded, and the resumed conversation counted against its context
        await wait_for(pilot.pause, lambda: screen.status.context_size > 0)
        await wait_for(pilot.pause, lambda: screen.status.context_used > 0)
        await settled(pilot, app, "It returns their sum", "1024")

    assert snap_compare(app, terminal_size=(100, 32), run_before=open_chat)


def test_models_screen(snap_compare: Any, make_app: Callable[..., LocalLLMApp]) -> None:
    app = make_app(None)

    async def open_models(pilot: Pilot[None]) -> None:
        await pilot.press("f3")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ModelsScreen))
        table = app.screen.query_one("#local", DataTable)
        await wait_for(
            pilot.pause,
            lambda: table.row_count and "CPU" in str(table.get_row_at(0)[4]),
            timeout=120,  # /api/fit plans every model: slow on a loaded machine
        )
        await settled(pilot, app, "CPU only")

    assert snap_compare(app, terminal_size=(110, 40), run_before=open_models)


def test_help_screen(snap_compare: Any, make_app: Callable[..., LocalLLMApp]) -> None:
    app = make_app(None)

    async def open_help(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.press("f1")
        await settled(pilot, app, "earlier prompts")

    assert snap_compare(app, terminal_size=(100, 44), run_before=open_help)
