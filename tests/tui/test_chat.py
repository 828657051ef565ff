"""Chat flows with Pilot against a real server: send, stream, stop, commands."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from localllm.tui.app import LocalLLMApp
from localllm.tui.chat import ChatScreen
from localllm.tui.messages import AnswerView
from tests.tui.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def chat_screen(app: LocalLLMApp) -> ChatScreen:
    assert isinstance(app.screen, ChatScreen)
    return app.screen


async def test_send_streams_an_answer_and_keeps_the_turn(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("tiny")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatScreen))
        screen = chat_screen(app)
        await wait_for(pilot.pause, lambda: screen.status.context_size > 0)
        assert screen.chat.system == "Be brief."
        assert screen.chat.options == {"num_ctx": 1024}
        await pilot.press(*"Hello", "enter")
        await wait_for(pilot.pause, lambda: len(screen.messages) == 2)
        answer = screen.query_one(AnswerView)
        assert answer.content and answer.stats["eval_count"] > 0
        assert screen.status.tokens_per_s and screen.status.ttft_s is not None
        assert "tok/s" in screen.status.text()
        chat = app.history.load(screen.chat.id)
        assert [m.role for m in chat.messages] == ["user", "assistant"]
        assert chat.messages[1].content == answer.content
        assert chat.title == "Hello"
