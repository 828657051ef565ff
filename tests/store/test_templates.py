"""Modelfile templates are checked by their own kind's parser and kept as written."""

from __future__ import annotations

import pytest

from localllm.engine.chat import render
from localllm.store.templates import TemplateError, check_template, is_go_template

CHATML_PROMPT = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n{{ .Response }}"
)
CHATML_MESSAGES = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)
JINJA = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def test_go_and_jinja_templates_are_told_apart() -> None:
    assert is_go_template(CHATML_PROMPT) and is_go_template(CHATML_MESSAGES)
    assert is_go_template('{{ $system := "" }}{{ range $i, $_ := .Messages }}{{ end }}')
    assert not is_go_template(JINJA)
    assert not is_go_template("{{ bos_token }}{{ messages[0]['content'] }}")


def test_templates_are_kept_exactly_as_written() -> None:
    assert check_template(CHATML_PROMPT) == CHATML_PROMPT
    assert check_template(JINJA) == JINJA


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ if .System }}x", "not a valid Go template .*unexpected EOF"),
        ("{{ .System }}{{ end }}", "unexpected \\{\\{end\\}\\}"),
        ("{{ .Prompt }}{{ nope .System }}", 'function "nope" not defined'),
        ("{% for m in messages %}", "not valid Jinja"),
    ],
)
def test_a_template_that_does_not_parse_is_refused_with_the_reason(
    template: str, words: str
) -> None:
    with pytest.raises(TemplateError, match=words):
        check_template(template)


def test_the_engine_renders_go_templates_as_ollama_does() -> None:
    hi = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert render(CHATML_PROMPT, hi) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render(CHATML_MESSAGES, hi) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
