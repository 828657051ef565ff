"""gpt-oss's harmony format (localllm/formats/harmony.py), cut at every position."""

from __future__ import annotations

import pytest

from localllm.engine.protocol import ToolCall
from localllm.formats import Parsed, format_for
from localllm.formats.harmony import HarmonyReply
from tests.formats.golden import check_every_cut

PARIS = ToolCall("get_weather", {"city": "Paris"})
ANALYSIS = "<|channel|>analysis<|message|>The user wants the weather.<|end|>"

CASES = {
    "thinking then the answer": (
        f"{ANALYSIS}<|start|>assistant<|channel|>final<|message|>It is sunny.",
        Parsed(content="It is sunny.", thinking="The user wants the weather."),
    ),
    "thinking then a call": (
        f"{ANALYSIS}<|start|>assistant<|channel|>commentary to=functions.get_weather "
        '<|constrain|>json<|message|>{"city": "Paris"}',
        Parsed(thinking="The user wants the weather.", calls=(PARIS,)),
    ),
    "the recipient before the channel": (
        f"{ANALYSIS}<|start|>assistant to=functions.get_weather<|channel|>commentary json"
        '<|message|>{"city": "Paris"}<|call|>',
        Parsed(thinking="The user wants the weather.", calls=(PARIS,)),
    ),
    "a preamble, then a call": (
        "<|channel|>commentary<|message|>Checking the forecast.<|end|><|start|>assistant"
        '<|channel|>commentary to=functions.get_weather<|message|>{"city": "Paris"}',
        Parsed(content="Checking the forecast.", calls=(PARIS,)),
    ),
    "a built-in tool's call stays text": (
        "<|channel|>analysis to=python<|message|>print(2 + 2)<|end|>",
        Parsed(content="print(2 + 2)"),
    ),
    "no header at all": ("Just text.", Parsed(content="Just text.")),
    "an unfinished header is dropped": ("<|channel|>fin", Parsed()),
    "the answer's end": (
        "<|channel|>final<|message|>Done.<|return|>",
        Parsed(content="Done."),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_harmony_reads_the_same_however_the_stream_is_cut(case: str) -> None:
    text, expected = CASES[case]
    check_every_cut(HarmonyReply, text, expected)


def test_the_format_comes_from_the_template() -> None:
    fmt = format_for("{{- '<|start|>assistant<|channel|>final<|message|>' }}")
    assert (fmt.name, fmt.call_syntax) == ("harmony", "harmony")
    assert "<|end|>" in fmt.preserved
