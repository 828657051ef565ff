"""Modelfile templates, checked when a model is made and kept as written.

A TEMPLATE is either Ollama's Go template (`{{ .System }}`, `{{ range .Messages }}`...)
or a Jinja chat template as GGUF files carry (`{% for message in messages %}`).
Each kind has its own renderer (`localllm.templates` for Go, `engine.chat` for
Jinja); nothing is translated, so `show --modelfile` gives back what was written
and a template copied from `ollama show --modelfile` renders as Ollama renders it.
"""

from __future__ import annotations

from localllm.errors import LocalLLMError
from localllm.templates.ollama import is_go_template


class TemplateError(LocalLLMError):
    """A template that cannot be used."""


def check_template(text: str) -> str:
    """`text` if it parses as its kind (Go or Jinja); TemplateError with the line."""
    if is_go_template(text):
        from localllm.templates.go import TemplateError as GoError
        from localllm.templates.ollama import ollama_template

        try:
            ollama_template(text)
        except GoError as exc:
            raise TemplateError(f"template: not a valid Go template ({exc})") from None
        return text
    return check_jinja(text)


def check_jinja(text: str) -> str:
    """The template must compile as Jinja (the engine renders it later); returns it."""
    from jinja2 import Environment, TemplateSyntaxError

    try:
        Environment().parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"template: not valid Jinja ({exc.message}, line {exc.lineno})"
        ) from None
    return text


__all__ = ["TemplateError", "check_jinja", "check_template", "is_go_template"]
