"""The chats, models and help screens, and errors, with Pilot against a real server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from localllm.history.store import ChatStore, Message
from localllm.tui.app import LocalLLMApp
from localllm.tui.chat import ChatScreen
from localllm.tui.chats import ChatsScreen
from localllm.tui.help import HelpScreen
from localllm.tui.messages import MessageView
from localllm.tui.models import ModelsScreen
from localllm.tui.prompt import PromptArea
from tests.live_server import Running
from tests.tui.conftest import opened_chat, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def seed_history(path: Path) -> int:
    """Two chats; returns the id of the older one (listed second)."""
    with ChatStore(path) as store:
        chat = store.create("tiny", system="Be brief.", options={"num_ctx": 1024})
        store.add(chat.id, Message("user", "What is 2+2?"), Message("assistant", "4"))
        store.add(chat.id, Message("user", "And 3+3?"), Message("assistant", "6"))
        other = store.create("other", title="Named")
        store.add(other.id, Message("user", "hi"), Message("assistant", "hello"))
    return chat.id


async def test_home_lists_chats_and_resumes_one(
    make_app: Callable[..., LocalLLMApp], tmp_path: Path
) -> None:
    seed_history(tmp_path / "history.db")
    app = make_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatsScreen))
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        assert table.get_row_at(0)[0] == "Named"  # the most recent first
        await pilot.press("down", "enter")
        screen = await opened_chat(app, pilot)
        assert [v.content for v in screen.query(MessageView)] == [
            "What is 2+2?",
            "4",
            "And 3+3?",
            "6",
        ]
        # Up recalls this chat's earlier prompts.
        await pilot.press("up")
        assert screen.query_one(PromptArea).text == "And 3+3?"
        await pilot.press("up")
        assert screen.query_one(PromptArea).text == "What is 2+2?"
        await pilot.press("down", "down")
        assert screen.query_one(PromptArea).text == ""
        # The conversation goes on with the whole context.
        await pilot.press(*"/set parameter num_predict 4", "enter", *"Go on", "enter")
        await wait_for(pilot.pause, lambda: len(screen.messages) == 6)
        assert screen.messages[-1].stats["prompt_eval_count"] > 10


async def test_rename_delete_and_export_from_the_chats_screen(
    make_app: Callable[..., LocalLLMApp], tmp_path: Path
) -> None:
    first = seed_history(tmp_path / "history.db")
    app = make_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatsScreen))
        await pilot.press("down", "r", *"Sums", "enter")
        await pilot.pause()
        assert app.history.title(first) == "Sums"
        table = app.screen.query_one(DataTable)
        await pilot.pause()
        table.move_cursor(row=table.get_row_index(str(first)))
        await pilot.press("e")
        exported = tmp_path / f"sums-{first}.md"
        assert "What is 2+2?" in exported.read_text()
        await pilot.press("d", "y")
        await pilot.pause()
        assert [c.title for c in app.history.chats()] == ["Named"]


async def test_slash_commands(make_app: Callable[..., LocalLLMApp], tmp_path: Path) -> None:
    app = make_app("tiny")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await opened_chat(app, pilot)
        await wait_for(pilot.pause, lambda: screen.model_info)

        async def say(text: str) -> str:
            await pilot.press(*text, "enter")
            await pilot.pause()
            notes = screen.query(".note")
            return str(notes.last().source) if notes else ""  # type: ignore[attr-defined]

        assert "temperature" in await say("/help")
        assert "Be brief." in await say("/show system")
        assert "  quantization    F32" in await say("/show info")  # as `localllm show` prints it
        await say("/set parameter temperature 0.25")
        assert screen.chat.options == {"num_ctx": 1024, "temperature": 0.25}
        assert "temperature 0.25" in await say("/show parameters")
        await say("/set system You are a pirate.")
        assert app.history.load(screen.chat.id).system == "You are a pirate."
        assert screen.payload("hi")[0] == {"role": "system", "content": "You are a pirate."}
        await say("/save pirate chat")
        assert app.history.title(screen.chat.id) == "pirate chat"
        first = screen.chat.id
        # A bad command is named, and nothing is sent.
        await say("/set parameter temperature hot")
        await say("/sett")
        assert screen.messages == [] and screen.chat.options["temperature"] == 0.25
        # Switching models keeps the chat and its settings.
        await say("/model other")
        await wait_for(
            pilot.pause, lambda: screen.status.model == "other" and screen.status.context_size
        )
        assert app.history.load(first).model == "other"
        await say("/model missing-model")
        assert screen.chat.model == "other"
        # /load opens a saved chat by name.
        await pilot.press("ctrl+n")
        await wait_for(pilot.pause, lambda: app.screen is not screen)
        assert isinstance(app.screen, ChatScreen) and app.screen.chat.id != first
        await pilot.press(*"/load pirate chat", "enter")
        await wait_for(
            pilot.pause, lambda: isinstance(app.screen, ChatScreen) and app.screen.chat.id == first
        )
        await pilot.press(*"/bye", "enter")
        await wait_for(pilot.pause, lambda: not app.is_running)


async def test_copy_answer_and_code_block(
    make_app: Callable[..., LocalLLMApp], tmp_path: Path
) -> None:
    with ChatStore(tmp_path / "history.db") as store:
        chat = store.create("tiny")
        answer = "Two ways:\n\n```python\nprint(1)\n```\n\nor\n\n```sh\necho 2\n```\n"
        store.add(chat.id, Message("user", "code?"), Message("assistant", answer))
    app = make_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatsScreen))
        await pilot.press("enter")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatScreen))
        await pilot.press("f4")
        assert app.clipboard == answer
        await pilot.press(*"/copy code 1", "enter")
        assert app.clipboard == "print(1)"
        await pilot.press(*"/copy code", "enter")
        assert app.clipboard == "echo 2"
        assert (tmp_path / "clipboard.txt").read_text() == "echo 2"


async def test_models_screen_pulls_with_progress_and_deletes(
    make_app: Callable[..., LocalLLMApp], tui_server: Running
) -> None:
    app = make_app(None)
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatsScreen))
        await pilot.press("f3")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ModelsScreen))
        screen = app.screen
        local = screen.query_one("#local", DataTable)
        await wait_for(
            pilot.pause, lambda: local.row_count == 3 and "CPU" in str(local.get_row_at(0)[4])
        )
        assert "RTX 4060" in str(screen.query_one("#hardware", Static).content)
        # Pull with live progress.
        await pilot.press("ctrl+l", *"hf.co/test/pico-GGUF", "enter")
        progress: list[float] = []

        def done() -> bool:
            bar = screen.query_one("#progress")
            if bar.display and bar.progress:  # type: ignore[attr-defined]
                progress.append(bar.progress)  # type: ignore[attr-defined]
            return local.row_count == 4

        await wait_for(pilot.pause, done, timeout=60)
        assert len(set(progress)) > 2, progress
        assert any("pico" in str(local.get_row_at(i)[0]) for i in range(4))
        assert "test/pico-gguf:q8_0" in {m.name for m in tui_server.store.list()}
        # Delete, after a confirmation.
        local.focus()
        row = next(i for i in range(4) if "pico" in str(local.get_row_at(i)[0]))
        local.move_cursor(row=row)
        await pilot.press("d", "y")
        await wait_for(pilot.pause, lambda: local.row_count == 3)
        assert sorted(m.name for m in tui_server.store.list()) == [
            "other:latest",
            "slow:latest",
            "tiny:latest",
        ]
        await pilot.press("escape")  # back to the chats
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatsScreen))


async def test_help_screen_opens_and_closes(make_app: Callable[..., LocalLLMApp]) -> None:
    app = make_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f1")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatsScreen))


async def test_server_down_is_a_notification_not_a_crash(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    from tests.cli.test_server_cli import free_port

    app = make_app("tiny", url=f"http://127.0.0.1:{free_port()}")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot.pause, lambda: app._notifications)
        messages = [n.message for n in app._notifications]
        assert any("not answering" in m and "localllm serve" in m for m in messages), messages
        assert isinstance(app.screen, ChatsScreen)
        assert app.is_running


async def test_an_unknown_model_is_a_failed_pull_with_the_reason(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("no-such-model")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot.pause, lambda: app._notifications)
        messages = [n.message for n in app._notifications]
        assert any("no-such-model" in m for m in messages), messages
        assert isinstance(app.screen, ModelsScreen)
        status = app.screen.query_one("#pull-status", Static)
        assert "pull of no-such-model failed" in str(status.content)


async def test_run_with_a_missing_model_pulls_it_then_chats(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("hf.co/test/pico-GGUF")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ModelsScreen))
        screen = await opened_chat(app, pilot, timeout=60)
        assert screen.chat.model == "test/pico-gguf:q8_0"  # the name it is stored under
        await wait_for(pilot.pause, lambda: screen.status.context_size > 0)
        hint = screen.query_one("#hint", Static)  # an empty chat says what to do
        assert "/help" in str(hint.content)
        await pilot.press(*"hi", "enter")
        await wait_for(pilot.pause, lambda: not screen.query("#hint"))
