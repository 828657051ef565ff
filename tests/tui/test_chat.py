"""Chat flows with Pilot against a real server: send, stream, stop, commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from localllm.store.store import Store
from localllm.tui.app import LocalLLMApp
from localllm.tui.messages import AnswerView
from localllm.tui.prompt import PromptArea
from tests.tui.conftest import long_answer, opened_chat, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


async def test_send_streams_an_answer_and_keeps_the_turn(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("tiny")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await opened_chat(app, pilot)
        await wait_for(pilot.pause, lambda: screen.status.context_size > 0)
        assert screen.chat.system == "Be brief."
        assert screen.chat.options == {"num_ctx": 1024, "temperature": 0.0}
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


async def test_escape_stops_the_answer_and_keeps_the_partial_text(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("slow")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await opened_chat(app, pilot)
        answer = await long_answer(pilot, screen, "Tell me everything")
        await pilot.press("escape")
        await wait_for(pilot.pause, lambda: len(screen.messages) == 2)
        assert not screen.answering
        kept = app.history.load(screen.chat.id).messages[1]
        assert kept.stats["stopped"] is True
        assert kept.content == answer.content and len(kept.content) > 20
        assert "stopped" in screen.status.text()
        # The model is free again: after /clear (the long answer filled the context)
        # the next message is answered.
        await pilot.press(*"/clear", "enter", *"/set parameter num_predict 8", "enter")
        assert screen.messages == [] and app.history.load(screen.chat.id).messages == ()
        await pilot.press(*"Again", "enter")
        await wait_for(pilot.pause, lambda: len(screen.messages) == 2)
        assert not screen.messages[1].stats.get("stopped")
        assert screen.query_one(PromptArea).text == ""


async def test_leaving_the_chat_mid_answer_keeps_the_partial_answer(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("slow")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await opened_chat(app, pilot)
        await long_answer(pilot, screen, "Go")
        await pilot.press("f2")  # to the chats, while the answer streams
        chat_id = screen.chat.id
        await wait_for(pilot.pause, lambda: len(app.history.load(chat_id).messages) == 2)
        kept = app.history.load(chat_id).messages[1]
        assert kept.stats["stopped"] is True and len(kept.content) >= 20
        assert app.is_running


async def test_copy_with_nothing_to_copy_is_a_notification(
    make_app: Callable[..., LocalLLMApp],
) -> None:
    app = make_app("tiny")
    async with app.run_test(size=(100, 30)) as pilot:
        await opened_chat(app, pilot)
        await pilot.press("f4")
        await pilot.pause()
        assert any("no answer to copy" in n.message for n in app._notifications)
        assert app.is_running


async def test_a_vision_chat_attaches_the_image_a_prompt_names(
    make_app: Callable[..., LocalLLMApp], tui_store: Store, tiny_files: dict[str, Path],
    tmp_path: Path,
) -> None:  # fmt: skip
    from PIL import Image

    from localllm.tui.messages import MessageView
    from tests.factory import TINY, TINY_PROJECTOR, write_projector
    from tests.live_server import add_model

    projector = write_projector(TINY_PROJECTOR, tmp_path / "mmproj.gguf", TINY)
    add_model(tui_store, "eyes", tiny_files["tiny"],
              f"FROM {projector}\nPARAMETER num_ctx 1024\nPARAMETER temperature 0\n")  # fmt: skip
    photo = tmp_path / "cat.png"
    Image.new("RGB", (40, 30), (20, 130, 30)).save(photo)
    app = make_app("eyes")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await opened_chat(app, pilot)
        await wait_for(pilot.pause, lambda: "vision" in screen.model_info.get("capabilities", []))
        await pilot.press(*f"What is {photo}?", "enter")
        await wait_for(pilot.pause, lambda: len(screen.messages) == 2)
        asked = screen.query(MessageView).results(MessageView)
        assert any("[image: cat.png]" in view.content for view in asked)
        turn = next(m for m in screen.payload("And now?") if m["role"] == "user")
        assert turn["content"] == "What is ?" and len(turn["images"]) == 1
        assert screen.query_one(AnswerView).stats["prompt_eval_count"] > TINY_PROJECTOR.image_tokens
