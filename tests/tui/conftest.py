"""The TUI against a real server on loopback (tiny generated models, real llama.cpp).

`tui_server` starts the server in a thread of the test process, with the
recorded laptop's hardware for `/api/hardware` so screens look the same on
every machine; `make_app` builds the app on it with a fresh history file.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from textual.pilot import Pilot

from localllm.server.app import create_app
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from localllm.tui.app import LocalLLMApp
from localllm.tui.chat import ChatScreen
from localllm.tui.messages import AnswerView
from localllm.workers.scheduler import Scheduler
from tests.factory import ModelSpec, write_model
from tests.fakehub import FakeHub, serve
from tests.hardware.profiles import nvidia_laptop
from tests.hardware.recorded import report_of
from tests.live_server import BUDGET, Running, add_model

LAPTOP = report_of(nvidia_laptop())


@pytest.fixture
def tui_store(tmp_path: Path, tiny_files: dict[str, Path]) -> Store:
    store = Store(tmp_path / "models")
    # Greedy, so what the tests see does not depend on a draw (an early end token).
    greedy = "PARAMETER num_ctx 1024\nPARAMETER temperature 0\n"
    add_model(store, "tiny", tiny_files["tiny"], greedy + "SYSTEM Be brief.\n")
    add_model(store, "other", tiny_files["other"], greedy)
    add_model(store, "slow", tiny_files["slow"], greedy)
    return store


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """A Hub on loopback with one repository; slow enough that a pull shows progress."""
    pico = write_model(ModelSpec(name="pico"), tmp_path_factory.mktemp("hub") / "pico.gguf", seed=2)
    fake = FakeHub(throttle_s=0.05)
    fake.add("test/pico-GGUF", "pico-Q8_0.gguf", pico)
    with serve(fake):
        yield fake


@pytest.fixture
def tui_server(tui_store: Store, tmp_path: Path, hub: FakeHub) -> Iterator[Running]:
    settings = ServerSettings(port=0)
    scheduler = Scheduler(settings, tui_store, tmp_path / "logs", budget=lambda: BUDGET)
    app = create_app(
        settings,
        tui_store,
        tmp_path / "logs",
        scheduler=scheduler,
        hub_endpoint=hub.url,
        hardware=lambda: LAPTOP,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Running(f"http://127.0.0.1:{port}", settings, tui_store, scheduler, server)
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def make_app(tui_server: Running, tmp_path: Path) -> Callable[..., LocalLLMApp]:
    def make(model: str | None = "tiny", url: str | None = None) -> LocalLLMApp:
        return LocalLLMApp(
            url or tui_server.url,
            None,
            tmp_path / "history.db",
            model,
            export_dir=tmp_path,
            cursor_blink=False,  # a steady cursor: the same snapshot at any speed
        )

    return make


async def wait_for(
    pause: Callable[[float], Awaitable[None]], condition: Callable[[], object], timeout: float = 120
) -> None:
    """Let the app run until `condition()` holds (real inference takes real time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pause(0.05)


def screen_text(app: LocalLLMApp) -> str:
    """The text the screen shows now, as a snapshot would render it."""
    svg = app.export_screenshot()
    return html.unescape("".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")


async def settled(pilot: Pilot[None], app: LocalLLMApp, *shown: str, timeout: float = 120) -> None:
    """Wait until the screen shows every text of `shown` and then stays the same from one
    look to the next: data that has arrived is also laid out (a table's columns widened),
    however slow the machine. What a snapshot needs before it is taken."""
    try:
        await wait_for(pilot.pause, lambda: all(t in screen_text(app) for t in shown), timeout)
    except AssertionError:
        raise AssertionError(f"the screen never showed {shown}: {screen_text(app)}") from None
    deadline = time.monotonic() + timeout
    before = app.export_screenshot()
    while True:
        await pilot.pause(0.1)
        now = app.export_screenshot()
        if now == before:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen kept changing for {timeout:.0f} s")
        before = now


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (Textual's loop), through anyio's pytest plugin."""
    return "asyncio"


async def opened_chat(app: LocalLLMApp, pilot: Pilot[None], timeout: float = 120) -> ChatScreen:
    """The chat screen, once the app shows one."""
    await wait_for(pilot.pause, lambda: isinstance(app.screen, ChatScreen), timeout)
    assert isinstance(app.screen, ChatScreen)
    return app.screen


async def long_answer(pilot: Pilot[None], screen: ChatScreen, prompt: str) -> AnswerView:
    """Ask `prompt` for an answer with no end in sight; its view once 20 characters came."""
    await pilot.press(*"/set parameter num_predict 100000", "enter", *prompt, "enter")
    await wait_for(pilot.pause, lambda: len(screen.query(AnswerView)) == 1)
    answer = screen.query_one(AnswerView)
    await wait_for(pilot.pause, lambda: len(answer.content) > 20)
    return answer
