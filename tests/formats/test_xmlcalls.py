"""Qwen3-Coder's XML tool calls (localllm/formats/xmlcalls.py), cut at every position."""

from __future__ import annotations

from typing import Any

import pytest

from localllm.engine.protocol import ToolCall
from localllm.formats import Parsed, format_for
from localllm.formats.think import TaggedReply
from localllm.formats.xmlcalls import XmlCalls
from tests.formats.golden import check_every_cut

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "metric": {"type": "boolean"},
                    "hours": {"type": "array"},
                    "note": {"type": ["string", "null"]},
                },
            },
        },
    }
]


def parser() -> TaggedReply:
    return TaggedReply(None, XmlCalls(TOOLS))


CASES = {
    "typed parameters": (
        "Let me check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n42\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n<parameter=metric>\ntrue\n</parameter>\n"
        "<parameter=hours>\n[9, 12]\n</parameter>\n<parameter=note>\nnull\n</parameter>\n"
        "</function>\n</tool_call>",
        Parsed(
            content="Let me check.\n",
            calls=(
                ToolCall(
                    "get_weather",
                    {"city": "42", "days": 3, "metric": True, "hours": [9, 12], "note": None},
                ),
            ),
        ),
    ),
    "a value that does not fit its type stays text": (
        "<tool_call>\n<function=get_weather>\n<parameter=days>\nthree\n</parameter>\n"
        "</function>\n</tool_call>",
        Parsed(calls=(ToolCall("get_weather", {"days": "three"}),)),
    ),
    "multi-line text": (
        "<tool_call>\n<function=write>\n<parameter=text>\nline 1\nline 2\n</parameter>\n"
        "</function>\n</tool_call>",
        Parsed(calls=(ToolCall("write", {"text": "line 1\nline 2"}),)),
    ),
    "the hermes form inside": (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        Parsed(calls=(ToolCall("get_weather", {"city": "Paris"}),)),
    ),
    "an unclosed call stays text": (
        "<tool_call>\n<function=f>",
        Parsed(content="<tool_call>\n<function=f>"),
    ),
    "no call": ("Just code: a < b", Parsed(content="Just code: a < b")),
}


@pytest.mark.parametrize("case", CASES)
def test_xml_calls_read_the_same_however_the_stream_is_cut(case: str) -> None:
    text, expected = CASES[case]
    check_every_cut(parser, text, expected)


def test_the_format_comes_from_the_template() -> None:
    template = "{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}<parameter={{ k }}>"
    fmt = format_for(template)
    assert (fmt.name, fmt.call_syntax) == ("qwen3-coder", "hermes")
