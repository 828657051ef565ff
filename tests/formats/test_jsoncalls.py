"""JSON tool calls (Hermes/Qwen, Mistral, Llama), read from streams cut at every
position (localllm/formats/jsoncalls.py)."""

from __future__ import annotations

import pytest

from localllm.engine.protocol import ToolCall
from localllm.formats import Parsed, format_for
from localllm.formats.jsoncalls import JsonCalls
from localllm.formats.think import TaggedReply, ThinkingSplitter
from tests.formats.golden import check_every_cut, feed

PARIS = ToolCall("get_weather", {"city": "Paris"})
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def calls_only() -> TaggedReply:
    return TaggedReply(None, JsonCalls())


CASES = {
    "hermes": (f"<tool_call>\n{CALL}\n</tool_call>", Parsed(calls=(PARIS,))),
    "hermes, text before, two calls": (
        f"Checking.\n<tool_call>\n{CALL}\n</tool_call>\n<tool_call>\n"
        '{"name": "get_time", "arguments": {}}\n</tool_call>',
        Parsed(content="Checking.\n\n", calls=(PARIS, ToolCall("get_time", {}))),
    ),
    "mistral list": (
        f'[TOOL_CALLS][{CALL}, {{"name": "get_time", "arguments": "{{}}"}}]',
        Parsed(calls=(PARIS, ToolCall("get_time", {}))),
    ),
    "mistral name[ARGS]": (
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        Parsed(calls=(PARIS,)),
    ),
    "llama bare": (
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        Parsed(calls=(PARIS,)),
    ),
    "llama python_tag": (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        Parsed(calls=(PARIS,)),
    ),
    "braces inside strings": (
        '<tool_call>{"name": "say", "arguments": {"text": "a } b \\" {"}}</tool_call>',
        Parsed(calls=(ToolCall("say", {"text": 'a } b " {'}),)),
    ),
    "json that is not a call": ('{"answer": 42}', Parsed(content='{"answer": 42}')),
    "a list that is not a call": ("[1] First point.", Parsed(content="[1] First point.")),
    "a marker in prose": (
        "Write <tool_call> tags around calls.",
        Parsed(content="Write <tool_call> tags around calls."),
    ),
    "an unfinished call stays text": (
        '<tool_call>{"name": "get_weather", "argu',
        Parsed(content='<tool_call>{"name": "get_weather", "argu'),
    ),
    "plain text": ("The answer is 4 <", Parsed(content="The answer is 4 <")),
    "white space after the last call is dropped": (
        '{"name": "get_weather", "parameters": {"city": "Paris"}} \n',
        Parsed(calls=(PARIS,)),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_json_calls_read_the_same_however_the_stream_is_cut(case: str) -> None:
    text, expected = CASES[case]
    check_every_cut(calls_only, text, expected)


def test_qwen3_thinks_then_calls() -> None:
    text = f"<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{CALL}\n</tool_call>"
    expected = Parsed(thinking="\nThe user wants weather.\n", calls=(PARIS,))
    check_every_cut(lambda: TaggedReply(ThinkingSplitter(), JsonCalls()), text, expected)


def test_each_call_goes_out_as_soon_as_it_is_complete() -> None:
    parser = calls_only()
    assert parser.feed(f"<tool_call>\n{CALL}") == Parsed(calls=(PARIS,))
    assert parser.feed("\n</tool_call>\n<tool_call>") == Parsed(content="\n")
    assert not parser.feed('{"name": "get_time", "arguments"')
    assert parser.feed(": {}}") == Parsed(calls=(ToolCall("get_time", {}),))
    assert not parser.finish()


def test_a_call_in_a_thinking_block_is_not_a_call() -> None:
    text = f"<think>maybe {CALL}</think>No call needed."
    got = feed(TaggedReply(ThinkingSplitter(), JsonCalls()), [text])
    assert got == Parsed(content="No call needed.", thinking=f"maybe {CALL}")


@pytest.mark.parametrize(
    ("template", "syntax"),
    [
        ("{{- '<tool_call>\\n' }}{{ tool_call | tojson }}", "hermes"),
        ("{{ '[TOOL_CALLS]' }}", "mistral"),
        ("{{- '<|python_tag|>' }}", "bare"),
        (None, "bare"),
    ],
)
def test_the_format_comes_from_the_template(template: str | None, syntax: str) -> None:
    fmt = format_for(template)
    assert (fmt.name, fmt.call_syntax) == ("tagged", syntax)
    assert "<tool_call>" in fmt.preserved and "<think>" in fmt.preserved
