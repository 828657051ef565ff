"""`localllm run` end to end: a background server, real inference on a tiny model,
a pull from a Hub on loopback, and the full-screen chat driven in tmux."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localllm.store.store import Store
from tests.cli.test_server_cli import free_port, servers_on
from tests.factory import ModelSpec, write_model
from tests.fakehub import FakeHub, serve
from tests.live_server import add_model

pytestmark = pytest.mark.slow


@pytest.fixture
def env(
    localllm_home: Path, tiny_files: dict[str, Path], tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A store with `tiny`, a Hub with `test/pico-GGUF`, and the server's address; the
    background server the commands start is stopped at the end."""
    store = Store(localllm_home / "data" / "models")
    add_model(
        store, "tiny", tiny_files["tiny"], "PARAMETER num_ctx 1024\nPARAMETER temperature 0\n"
    )
    hub = FakeHub()
    hub.add(
        "test/pico-GGUF",
        "pico-Q8_0.gguf",
        write_model(ModelSpec(name="pico"), tmp_path / "p.gguf", seed=3),
    )
    port = free_port()
    with serve(hub):
        yield {**os.environ, "LOCALLLM_HOST": f"127.0.0.1:{port}", "HF_ENDPOINT": hub.url}
    for pid in servers_on(port):
        os.kill(pid, signal.SIGTERM)


def localllm(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localllm", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_prompt_streams_the_answer_to_stdout(env: dict[str, str]) -> None:
    out = localllm(env, "run", "tiny", "Hello", "there", "--verbose", stdin="")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "eval rate:" in out.stderr and "prompt eval count:" in out.stderr
    piped = localllm(env, "run", "tiny", "Summarize:", stdin="a long text\n" * 20)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() and "eval rate" not in piped.stderr


def test_a_missing_model_is_pulled_first(env: dict[str, str]) -> None:
    out = localllm(env, "run", "hf.co/test/pico-GGUF", "Hi", stdin="")
    assert out.returncode == 0, out.stderr
    assert "Picked Q8_0" in out.stderr  # the planner's choice, then the answer
    assert out.stdout.strip()
    listed = localllm(env, "list")
    assert "test/pico-gguf:q8_0" in listed.stdout


def test_a_local_gguf_is_imported_by_the_cli_not_read_by_the_server(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = write_model(ModelSpec(name="mine"), tmp_path / "mine.gguf", seed=4)
    out = localllm(env, "run", str(path), "Hi", stdin="")
    assert out.returncode == 0, out.stderr
    assert f"importing {path}" in out.stderr  # then answered (sampled: maybe in no words)
    assert "mine" in localllm(env, "list").stdout


def test_bad_input_is_a_message_not_a_traceback(env: dict[str, str]) -> None:
    out = localllm(env, "run", "no-such-model", "Hi", stdin="")
    assert out.returncode == 1 and "no-such-model" in out.stderr
    assert "Traceback" not in out.stderr
    empty = localllm(env, "run", "tiny", stdin="")
    assert empty.returncode == 1 and "nothing to ask" in empty.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_chat_in_a_real_terminal(env: dict[str, str], tmp_path: Path) -> None:
    session = f"localllm-test-{os.getpid()}"
    tmux = ["tmux", "-L", session]
    env = {**env, "TERM": "xterm-256color"}
    command = f"{sys.executable} -m localllm run tiny"
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "110", "-y", "32", command],
                   env=env, check=True)  # fmt: skip

    def screen() -> str:
        done = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
        )
        return done.stdout

    def wait(condition: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = screen()
            if condition(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed it:\n{screen()}")

    try:
        wait(lambda s: "ctx 0/1024" in s)  # loaded: the status line has the context size
        subprocess.run([*tmux, "send-keys", "-t", session, "Hello from tmux", "Enter"], check=True)
        # The whole answer (up to the context) streams first: slow on a loaded machine.
        shown = wait(lambda s: "tok/s" in s and "TTFT" in s, timeout=900)
        assert "Hello from tmux" in shown and "Assistant" in shown
        subprocess.run([*tmux, "send-keys", "-t", session, "/bye", "Enter"], check=True)
        wait(
            lambda s: (
                subprocess.run(
                    [*tmux, "has-session", "-t", session], capture_output=True
                ).returncode
                != 0
                or "Hello from tmux" not in s
            )
        )
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_a_vision_model_reads_the_image_a_prompt_names(
    env: dict[str, str], localllm_home: Path, tiny_files: dict[str, Path], tmp_path: Path
) -> None:
    from PIL import Image

    from tests.factory import TINY, TINY_PROJECTOR, write_projector

    store = Store(localllm_home / "data" / "models")
    projector = write_projector(TINY_PROJECTOR, tmp_path / "mmproj.gguf", TINY)
    add_model(store, "eyes", tiny_files["tiny"],
              f"FROM {projector}\nPARAMETER num_ctx 1024\nPARAMETER temperature 0\n")  # fmt: skip
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(photo)

    def prompt_tokens(out: subprocess.CompletedProcess[str]) -> int:
        line = next(x for x in out.stderr.splitlines() if x.startswith("prompt eval count:"))
        return int(line.split(":")[1].split()[0])

    seen = localllm(env, "run", "eyes", f"What is {photo}", "--verbose", stdin="")
    assert seen.returncode == 0, seen.stderr
    assert f"Added image '{photo}'" in seen.stderr
    plain = localllm(env, "run", "eyes", "What is", "--verbose", stdin="")
    assert prompt_tokens(seen) >= prompt_tokens(plain) + TINY_PROJECTOR.image_tokens
    # a model without a projector gets the path as text, as Ollama's CLI does
    text = localllm(env, "run", "tiny", f"What is {photo}", stdin="")
    assert text.returncode == 0 and "Added image" not in text.stderr
