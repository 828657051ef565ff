"""Ollama Go templates of the common forms become Jinja that renders the same text."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from localllm.store.templates import TemplateError, check_jinja, go_to_jinja, is_go_template

CHATML_PROMPT = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n{{ .Response }}"
)
CHATML_MESSAGES = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)


def _render(template: str, **values: object) -> str:
    """Render as Go would, and check that block trimming (llama-cpp-python's setting)
    changes nothing."""
    plain = Environment(keep_trailing_newline=True).from_string(template).render(**values)
    trimming = Environment(keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    assert trimming.from_string(template).render(**values) == plain
    return plain


def test_prompt_form() -> None:
    jinja = go_to_jinja(CHATML_PROMPT)
    with_system = _render(jinja, system="Be brief.", prompt="Hi", response="")
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi")
    without = _render(jinja, system="", prompt="Hi", response="")
    assert without.startswith("<|im_start|>user\nHi<|im_end|>")


def test_messages_form() -> None:
    jinja = go_to_jinja(CHATML_MESSAGES)
    text = _render(jinja, messages=[{"role": "user", "content": "Hi"},
                                    {"role": "assistant", "content": "Hello"}])  # fmt: skip
    assert text == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ .Tools }}", "not a form localllm translates"),
        ("{{ range $i, $m := .Messages }}{{ end }}", "only range .Messages"),
        ("{{ if .System }}x", "never closed"),
        ("{{ end }}", "without an"),
        ("{{ json .Tools }}", "not a form"),
    ],
)
def test_other_forms_are_refused_with_the_construct(template: str, words: str) -> None:
    with pytest.raises(TemplateError, match=words):
        go_to_jinja(template)


def test_detection_and_jinja_check() -> None:
    assert is_go_template(CHATML_PROMPT) and is_go_template(CHATML_MESSAGES)
    assert not is_go_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(TemplateError, match="not valid Jinja"):
        check_jinja("{% for m in messages %}")
