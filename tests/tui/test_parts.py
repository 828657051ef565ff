"""The TUI's pure parts: slash commands, fences, parameters, status, clipboard, advice."""

from __future__ import annotations

import pytest

from localllm.client import ServerError, ServerNotRunning
from localllm.tui.advice import advice
from localllm.tui.chats import export_name
from localllm.tui.clipboard import clipboard_command
from localllm.tui.commands import Command, CommandError, code_blocks, parse_command
from localllm.tui.messages import stats_text
from localllm.tui.models import badge, processor
from localllm.tui.prompt import fenced
from localllm.tui.settings import format_parameters, parse_parameters
from localllm.tui.status import Status


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/set parameter temperature 0.5", Command("set-parameter", ("temperature",), 0.5)),
        ("/set parameter num_ctx 4096", Command("set-parameter", ("num_ctx",), 4096)),
        ("/set system  You are terse. ", Command("set-system", ("You are terse.",))),
        ("/set system", Command("set-system", ("",))),
        ("/show", Command("show", ("info",))),
        ("/show template", Command("show", ("template",))),
        ("/save my chat", Command("save", ("my chat",))),
        ("/load 3", Command("load", ("3",))),
        ("/model llama3.2:3b", Command("model", ("llama3.2:3b",))),
        ("/copy", Command("copy", ("answer",))),
        ("/copy code 2", Command("copy", ("code", "2"))),
        ("/?", Command("help")),
        ("/exit", Command("bye")),
        ("/CLEAR", Command("clear")),
    ],
)
def test_slash_commands_parse(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/set parameter temperature hot", "temperature"),
        ("/set parameter warmth 1", "unknown parameter 'warmth'"),
        ("/set parameter top_p 2", "top_p"),
        ("/set parameter", "usage: /set parameter NAME VALUE"),
        ("/set verbose", "usage"),
        ("/show everything", "/show takes one of"),
        ("/model", "/model needs a name"),
        ("/copy code zero", "N counts from 1"),
        ("/frobnicate", "unknown command /frobnicate; /help lists them"),
    ],
)
def test_bad_slash_commands_say_the_right_form(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=None) as error:
        parse_command(text)
    assert says in str(error.value)


def test_code_blocks_of_an_answer() -> None:
    answer = "a\n```python\nx = 1\n\ny = 2\n```\ntext\n~~~\nls\n~~~\n```\nunclosed"
    assert code_blocks(answer) == ["x = 1\n\ny = 2", "ls", "unclosed"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "hello"),
        ('"""', None),
        ('"""first line\nsecond', None),
        ('"""first line\nsecond"""', "first line\nsecond"),
        ('"""\ncode\n"""', "code"),
    ],
)
def test_triple_quote_fences(text: str, message: str | None) -> None:
    assert fenced(text) == message


def test_parameters_dialog_text_round_trips() -> None:
    options = {"temperature": 0.7, "num_ctx": 4096, "stop": ["###", "User:"]}
    assert parse_parameters(format_parameters(options)) == options
    assert parse_parameters("# a comment\n\n top_k 20 \n") == {"top_k": 20}
    with pytest.raises(CommandError, match="line 2: unknown parameter"):
        parse_parameters("top_k 20\nwarmth 3")


def test_status_line() -> None:
    status = Status("llama3.2:3b", "Q4_K_M", 29, 29, 512, 8192, 41.26, 0.183)
    assert status.text() == (
        "llama3.2:3b · Q4_K_M · GPU 29/29 layers · ctx 512/8192 · 41.3 tok/s · TTFT 0.18 s"
    )
    assert Status("tiny", gpu_layers=0, state="loading").text() == "tiny · CPU · loading"


def test_answer_footnote() -> None:
    stats = {"eval_count": 12, "tokens_per_s": 50.04, "ttft_s": 0.3, "stopped": True}
    assert stats_text(stats) == "12 tokens · 50.0 tok/s · TTFT 0.30 s · stopped"


def test_clipboard_tool_choice() -> None:
    installed = {"xclip": "/usr/bin/xclip", "pbcopy": "/usr/bin/pbcopy"}
    assert clipboard_command(installed.get, {"DISPLAY": ":0"}) == [
        "/usr/bin/xclip",
        "-selection",
        "clipboard",
    ]
    # Without a display an X11 tool cannot work; macOS's can.
    assert clipboard_command(installed.get, {}) == ["/usr/bin/pbcopy"]
    assert clipboard_command(lambda name: None, {"DISPLAY": ":0"}) is None


def test_advice_says_what_to_do() -> None:
    url = "http://127.0.0.1:11435"
    assert "localllm serve" in advice(ServerNotRunning("x"), url)
    assert "Models screen" in advice(ServerError(404, "model 'x' not found"), url)
    oom = ServerError(500, "model 'x' does not fit in the memory left: ...")
    assert "num_ctx" in advice(oom, url)
    full = ServerError(400, "the prompt is 2000 tokens but the context holds 1024")
    assert "/clear" in advice(full, url)


def test_model_badges_and_processor() -> None:
    assert badge({"fit": "full GPU", "gpu_layers": 29, "layers": 29}) == "● full GPU"
    assert badge({"fit": "partial", "gpu_layers": 20, "layers": 33}) == "◐ partial 20/33"
    assert badge({"fit": "CPU", "gpu_layers": 0, "layers": 33}) == "○ CPU only"
    assert badge({"fit": "won't fit", "gpu_layers": 0, "layers": 0}) == "✕ won't fit"
    assert processor({"size": 100, "size_vram": 100}) == "100% GPU"
    assert processor({"size": 100, "size_vram": 40}) == "40% GPU"
    assert processor({"size": 100, "size_vram": 0}) == "100% CPU"


def test_export_file_names() -> None:
    assert export_name("What is 2+2?", 7) == "what-is-2-2-7.md"
    assert export_name("", 3) == "chat-3.md"
    assert export_name("../../etc/passwd", 1) == "etc-passwd-1.md"
