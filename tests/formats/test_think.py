"""The `<think>` splitter (localllm/formats/think.py)."""

from __future__ import annotations

import pytest

from localllm.formats.think import Part, ThinkingSplitter


def split(chunks: list[str]) -> list[Part]:
    splitter = ThinkingSplitter()
    parts: list[Part] = []
    for chunk in chunks:
        parts.extend(splitter.feed(chunk))
    parts.extend(splitter.finish())
    merged: list[Part] = []
    for kind, text in parts:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def test_plain_text_is_content() -> None:
    assert split(["Hello", " world"]) == [("content", "Hello world")]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_tags_cut_across_chunks_at_any_point(size: int) -> None:
    text = "<think>\nLet me see.\n</think>\n\nThe answer is 4."
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert split(chunks) == [("thinking", "\nLet me see.\n"), ("content", "The answer is 4.")]


def test_a_lone_angle_bracket_is_not_held_forever() -> None:
    assert split(["a <", "b"]) == [("content", "a <b")]
    assert split(["x <thi"]) == [("content", "x <thi")]


R1_DISTILL = (
    "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<\uff5cAssistant\uff5c><think>\\n'}}{% endif %}"
)
QWEN3 = (
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)


def test_a_template_that_opens_the_thinking_block() -> None:
    from localllm.formats.think import opens_thinking

    assert opens_thinking(R1_DISTILL)
    assert not opens_thinking(QWEN3)  # its model writes <think> itself
    assert not opens_thinking("{% if add_generation_prompt %}ASSISTANT:{% endif %}")
    splitter = ThinkingSplitter(thinking=opens_thinking(R1_DISTILL))
    parts = splitter.feed("Hmm, 2+2.\n</think>\n\nFour.") + splitter.finish()
    assert parts == [("thinking", "Hmm, 2+2.\n"), ("content", "Four.")]
