"""How the TUI feels: first paint, keys while tokens stream, opening a long chat.

    python benchmarks/tui.py [--runs 5]

Against a real `localllm serve` on loopback with a generated 50 MB model (it
streams at hundreds of tokens/s here, well past the 50 tok/s the chat must
keep up with). Prints three tables:

1. first paint: wall time from starting the process in a pseudo-terminal to
   the first screen's text arriving (`localllm`: the chats home; `localllm run
   MODEL`: the chat), Python's start-up and imports included. Target: 0.5 s.
2. keys while streaming: how long each key press takes to be handled (Pilot
   waits until the app has processed it) while an answer streams in, against
   the same with nothing streaming; and the answer's own rate.
3. opening a chat of 600 messages: until the screen is laid out, as the app
   does it (the last 16 messages, older ones a page at a time) and mounting
   them all, which shows why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from benchmarks._models import add_workdir, model_file
from benchmarks.server import free_port, start_server
from localllm.history.store import ChatStore, Message
from localllm.store.store import Store
from tests.live_server import add_model

TARGET_PAINT_S = 0.5
ANSWER = (
    "Here is how:\n\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n"
    "- it takes **two** numbers\n- it returns their sum\n\nAnything else?"
)


def first_paint(argv: list[str], env: dict[str, str], marker: bytes) -> float:
    """Seconds until `marker` appears on the pseudo-terminal, then quit with Ctrl+Q."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    seen = b""
    took = float("nan")
    try:
        deadline = start + 30
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if marker in seen:
                    took = time.perf_counter() - start
                    break
        os.write(fd, b"\x11")  # Ctrl+Q
        time.sleep(0.3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
    return took


async def key_latency(
    url: str, history: Path, model: str, stream: bool
) -> tuple[list[float], float]:
    """Seconds per key press (40 keys), with or without an answer streaming; and the
    answer's tokens/s as the app received them."""
    from textual import events

    from localllm.tui.app import LocalLLMApp
    from localllm.tui.chat import ChatScreen
    from localllm.tui.messages import AnswerView
    from localllm.tui.prompt import PromptArea

    app = LocalLLMApp(url, None, history, model)
    times: list[float] = []
    rate = 0.0
    async with app.run_test(size=(120, 40)) as pilot:
        while not (isinstance(app.screen, ChatScreen) and app.screen.status.context_size):
            await pilot.pause(0.05)
        screen = app.screen
        if stream:
            # A long answer with no early end (options the API takes, beyond /set's).
            options = {**screen.chat.options, "num_predict": 1800, "ignore_eos": True}
            screen.set_options(screen.chat.system, options)
            await pilot.press(*"Tell me a long story", "enter")
            while not screen.query(AnswerView) or len(screen.query_one(AnswerView).content) < 50:
                await pilot.pause(0.01)
        started = time.perf_counter()
        answer = screen.query(AnswerView).last() if stream else None
        before = len(answer.content) if answer else 0
        prompt = screen.query_one(PromptArea)
        for ch in "the quick brown fox jumps over the lazy d":
            if stream and not screen.answering:
                break
            # As a terminal delivers it: a key event into the app's queue, then until the
            # message box shows it (Pilot's press waits for an idle app, never idle here).
            before_text = prompt.text
            t = time.perf_counter()
            app.post_message(events.Key(ch, ch))
            while prompt.text == before_text:
                await asyncio.sleep(0.0005)
            times.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)  # a fast typist: about 20 keys a second
        if answer is not None:
            print(f"{len(times)} keys in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            chars = len(answer.content) - before
            rate = chars / (time.perf_counter() - started)
            screen.action_stop()
            await pilot.pause(0.2)
    return times, rate


async def open_long_chat(url: str, history: Path, chat_id: int, page: int) -> float:
    from localllm.tui import chat
    from localllm.tui.app import LocalLLMApp
    from localllm.tui.chat import ChatScreen

    saved, chat.PAGE = chat.PAGE, page
    try:
        app = LocalLLMApp(url, None, history, None)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            start = time.perf_counter()
            await app.open_chat(chat_id)
            while not (isinstance(app.screen, ChatScreen) and app.screen._shown):
                await pilot.pause(0.005)
            await pilot.pause()  # laid out and painted
            took = time.perf_counter() - start
    finally:
        chat.PAGE = saved
    return took


def seed(history: Path, model: str, messages: int) -> int:
    with ChatStore(history) as store:
        chat = store.create(model, title="long chat")
        for i in range(messages // 2):
            store.add(chat.id, Message("user", f"Question {i}: how do I add numbers?"),
                      Message("assistant", ANSWER, stats={"eval_count": 40}))  # fmt: skip
        return chat.id


def summary(values: list[float], scale: float = 1.0) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"{statistics.median(values) * scale:>8.1f} {p95 * scale:>8.1f} "
            f"{max(values) * scale:>8.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    add_workdir(parser)
    args = parser.parse_args()
    path = model_file(args.workdir, small=True)
    with tempfile.TemporaryDirectory(prefix="localllm-tui-") as tmp:
        home = Path(tmp)
        add_model(Store(home / "data" / "models"), "bench", path, "PARAMETER num_ctx 8192\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server, _, _ = start_server(home, port)
        env = {**os.environ, "LOCALLLM_HOME": str(home), "LOCALLLM_HOST": f"127.0.0.1:{port}",
               "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}  # fmt: skip
        try:
            cli = [sys.executable, "-m", "localllm"]
            subprocess.run([*cli, "run", "bench", "hi"], env=env, capture_output=True, check=True)
            home_paint = [first_paint(cli, env, b"Chats") for _ in range(args.runs)]
            run_paint = [first_paint([*cli, "run", "bench"], env, b"Copy answer")
                         for _ in range(args.runs)]  # fmt: skip
            print(f"First paint, {args.runs} runs (s)      median      min      max")
            for name, times in (("localllm (home)", home_paint), ("localllm run bench", run_paint)):
                print(f"  {name:<32}{statistics.median(times):>8.3f} {min(times):>8.3f} "
                      f"{max(times):>8.3f}")  # fmt: skip
            print(f"  target: {TARGET_PAINT_S} s\n")

            history = home / "data" / "bench-history.db"
            idle, _ = asyncio.run(key_latency(url, history, "bench", stream=False))
            busy, rate = asyncio.run(key_latency(url, history, "bench", stream=True))
            print("Key press handled (ms)           median      p95      max")
            print(f"  idle                          {summary(idle, 1000)}")
            print(f"  while streaming               {summary(busy, 1000)}")
            print(f"  the answer came at {rate:.0f} characters/s "
                  f"(~{rate / 4:.0f} tokens/s at 4 characters a token)\n")  # fmt: skip

            chat_id = seed(history, "bench", 600)
            ours = [asyncio.run(open_long_chat(url, history, chat_id, 16)) for _ in range(3)]
            every = [asyncio.run(open_long_chat(url, history, chat_id, 10**6))]  # slow: once
            print("Open a chat of 600 messages (s)  median      min      max")
            for name, times in (("last 16, then by page", ours), ("all 600 at once", every)):
                print(f"  {name:<32}{statistics.median(times):>6.3f} {min(times):>8.3f} "
                      f"{max(times):>8.3f}")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
