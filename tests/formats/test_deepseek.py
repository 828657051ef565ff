"""DeepSeek's tool-call markers (localllm/formats/deepseek.py), cut at every position."""

from __future__ import annotations

from localllm.engine.protocol import ToolCall
from localllm.formats import Parsed, format_for
from localllm.formats.deepseek import (
    CALL_BEGIN,
    CALL_END,
    CALLS_BEGIN,
    CALLS_END,
    SEP,
    DeepSeekCalls,
)
from localllm.formats.think import TaggedReply, ThinkingSplitter
from tests.formats.golden import check_every_cut

PARIS = ToolCall("get_weather", {"city": "Paris"})


def test_v3_calls_with_a_fenced_json_body() -> None:
    text = (
        f"Let me look.{CALLS_BEGIN}{CALL_BEGIN}function{SEP}get_weather\n```json\n"
        f'{{"city": "Paris"}}\n```{CALL_END}{CALLS_END}'
    )
    expected = Parsed(content="Let me look.", calls=(PARIS,))
    check_every_cut(lambda: TaggedReply(None, DeepSeekCalls()), text, expected)


def test_v31_calls_name_then_arguments() -> None:
    text = (
        f'{CALLS_BEGIN}{CALL_BEGIN}get_weather{SEP}{{"city": "Paris"}}{CALL_END}'
        f"{CALL_BEGIN}get_time{SEP}{{}}{CALL_END}{CALLS_END}"
    )
    expected = Parsed(calls=(PARIS, ToolCall("get_time", {})))
    check_every_cut(lambda: TaggedReply(None, DeepSeekCalls()), text, expected)


def test_r1_thinks_from_the_first_token_then_calls() -> None:
    # The R1 template opens <think> in the generation prompt: the reply starts inside.
    text = (
        f"Need the weather.\n</think>\n\n{CALLS_BEGIN}{CALL_BEGIN}get_weather{SEP}"
        f'{{"city": "Paris"}}{CALL_END}{CALLS_END}'
    )
    expected = Parsed(thinking="Need the weather.\n", calls=(PARIS,))
    check_every_cut(lambda: TaggedReply(ThinkingSplitter(True), DeepSeekCalls()), text, expected)


def test_a_broken_call_stays_text() -> None:
    text = f"{CALLS_BEGIN}{CALL_BEGIN}get_weather{SEP}{{not json{CALL_END}{CALLS_END}"
    expected = Parsed(content=f"{CALL_BEGIN}get_weather{SEP}{{not json{CALL_END}")
    check_every_cut(lambda: TaggedReply(None, DeepSeekCalls()), text, expected)


def test_the_format_comes_from_the_template() -> None:
    template = "{{'<\uff5cAssistant\uff5c>'}}{{'" + CALL_BEGIN + "'}}"
    fmt = format_for(template)
    assert (fmt.name, fmt.call_syntax) == ("deepseek", "deepseek-v3.1")
    assert CALLS_BEGIN in fmt.preserved and "</think>" in fmt.preserved
