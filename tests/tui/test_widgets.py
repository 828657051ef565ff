"""Widgets on their own: the message box's keys, thinking apart from the answer,
following the stream, and the command palette's entries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Collapsible

from localllm.tui.app import LocalLLMApp
from localllm.tui.chat import ChatScreen
from localllm.tui.messages import AnswerView
from localllm.tui.prompt import PromptArea
from tests.tui.conftest import wait_for

pytestmark = pytest.mark.anyio


class PromptApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def compose(self) -> ComposeResult:
        yield PromptArea(["older prompt"])

    def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        self.sent.append(event.text)


async def test_enter_sends_ctrl_j_adds_a_line_and_fences_span_lines() -> None:
    app = PromptApp()
    async with app.run_test() as pilot:
        area = app.query_one(PromptArea)
        area.focus()
        await pilot.press(*"one", "ctrl+j", *"two", "enter")
        assert app.sent == ["one\ntwo"] and area.text == ""
        await pilot.press(*'"""', "enter", *"a", "enter", *'b"""')
        assert app.sent == ["one\ntwo"]  # still open: Enter added lines
        await pilot.press("enter")
        assert app.sent[-1] == "a\nb"
        await pilot.press("enter")  # nothing to send
        assert len(app.sent) == 2
        await pilot.press("up")
        assert area.text == "a\nb"
        await pilot.press("up", "up")  # within the recalled lines first, then further back
        assert area.text == "one\ntwo"
        await pilot.press("up", "up")
        assert area.text == "older prompt"
        await pilot.press("down", "down", "down")
        assert area.text == ""


class AnswerApp(App[None]):
    CSS_PATH = Path(__file__).parents[2] / "localllm" / "tui" / "app.tcss"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="log"):
            yield AnswerView()


def folded(block: Collapsible) -> bool:
    return bool(block.collapsed)  # read afresh each time (mypy would narrow the attribute)


async def test_thinking_is_apart_and_folds_when_the_answer_starts() -> None:
    app = AnswerApp()
    async with app.run_test() as pilot:
        view = app.query_one(AnswerView)
        await view.add_thinking("Let me think")
        await view.add_thinking(" about it.")
        await pilot.pause()
        block = view.query_one(Collapsible)
        assert view.thinking == "Let me think about it."
        assert not folded(block)
        await view.add_content("**Four.**")
        await view.finish({"eval_count": 3})
        await pilot.pause()
        assert folded(block) and view.content == "**Four.**"


async def test_the_view_follows_the_stream_until_scrolled_up() -> None:
    app = AnswerApp()
    async with app.run_test(size=(60, 10)) as pilot:
        log = app.query_one("#log", VerticalScroll)
        log.anchor()
        view = app.query_one(AnswerView)
        for i in range(30):
            await view.add_content(f"line {i}\n\n")
        await pilot.pause(0.2)
        assert log.scroll_y == log.max_scroll_y > 0  # following
        log.scroll_up(animate=False)  # as the wheel or the Up key does: stop following
        await pilot.pause(0.1)
        held = log.scroll_y
        for i in range(30, 40):
            await view.add_content(f"line {i}\n\n")
        await pilot.pause(0.2)
        assert log.scroll_y == held < log.max_scroll_y
        log.scroll_end(animate=False)  # back at the bottom: following again
        await pilot.pause(0.1)
        for i in range(40, 50):
            await view.add_content(f"line {i}\n\n")
        await pilot.pause(0.2)
        assert log.scroll_y == log.max_scroll_y


@pytest.mark.slow
async def test_every_action_is_in_the_command_palette(
    make_app: Callable[..., LocalLLMApp], tmp_path: Path
) -> None:
    app = make_app("tiny")
    async with app.run_test() as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatScreen))
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in ("New chat", "Chats", "Models", "Help", "Stop the answer",
                      "Copy the last answer", "Copy the last code block",
                      "System prompt and parameters", "Clear the conversation"):  # fmt: skip
            assert title in titles
        await pilot.press("f3")
        await wait_for(pilot.pause, lambda: app.screen.__class__.__name__ == "ModelsScreen")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in ("Pull a model", "Delete the model", "Unload the model"):
            assert title in titles
        await pilot.press("f2", "f3", "f2")  # screens replaced while their workers run
        await pilot.pause(1.0)
        assert app.is_running
