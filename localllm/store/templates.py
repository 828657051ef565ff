"""Ollama Go templates in Modelfiles, translated to the Jinja chat templates GGUF uses.

The common forms translate mechanically: `{{ .System }}`, `{{ .Prompt }}`,
`{{ .Response }}`, `{{ if .X }}...{{ else }}...{{ end }}`, and
`{{ range .Messages }}...{{ .Role }}...{{ .Content }}...{{ end }}`, with
`{{-`/`-}}` trimming. The Jinja result renders with `messages`, `system`,
`prompt` and `response`, and gives the same text whether or not the renderer
trims blocks (render with `keep_trailing_newline=True`, as Go keeps it).
Anything else (functions, `$` variables, tools, nested templates) is refused
with the construct named, never guessed at.
"""

from __future__ import annotations

import re

from localllm.errors import LocalLLMError

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)
_GO_HINT = re.compile(r"{{-?\s*(\.|if\s|range\s|end\b|else\b)")
_FIELDS = {".System": "system", ".Prompt": "prompt", ".Response": "response"}
_IN_RANGE = {".Role": "message.role", ".Content": "message.content"}


class TemplateError(LocalLLMError):
    """A template that cannot be used."""


def is_go_template(text: str) -> bool:
    return bool(_GO_HINT.search(text))


def go_to_jinja(text: str) -> str:
    """Translate a Go template of the common forms; raises TemplateError otherwise."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in _ACTION.finditer(text):
        out.append(text[pos : match.start()])
        pos = match.end()
        left, body, right = match.group(1), match.group(2), match.group(3)
        out.append(_translate(body, left, right, stack))
    if stack:
        raise TemplateError(f"template: {{{{ {stack[-1]} }}}} is never closed with {{{{ end }}}}")
    out.append(text[pos:])
    return check_jinja("".join(out))


def _translate(body: str, left: str, right: str, stack: list[str]) -> str:
    # `+` keeps Go's whitespace even where the renderer sets trim_blocks and
    # lstrip_blocks (llama-cpp-python does); `-` trims, as in Go.
    lt, rt = "{%" + (left or "+"), (right or "+") + "%}"
    in_range = "range" in stack

    def value(expr: str) -> str:
        if in_range and expr in _IN_RANGE:
            return _IN_RANGE[expr]
        if expr in _FIELDS:
            return _FIELDS[expr]
        raise TemplateError(f"template: {{{{ {body} }}}} is not a form localllm translates; "
                            "write the TEMPLATE as a Jinja chat template instead")  # fmt: skip

    if body.startswith("if "):
        stack.append("if")
        return f"{lt} if {value(body[3:].strip())} {rt}"
    if body.startswith("range "):
        if body[6:].strip() != ".Messages":
            raise TemplateError(f"template: {{{{ {body} }}}}: only range .Messages is translated")
        stack.append("range")
        return f"{lt} for message in messages {rt}"
    if body == "else":
        if not stack or stack[-1] != "if":
            raise TemplateError("template: {{ else }} outside an {{ if }}")
        return f"{lt} else {rt}"
    if body == "end":
        if not stack:
            raise TemplateError("template: {{ end }} without an {{ if }} or {{ range }}")
        return f"{lt} {'endif' if stack.pop() == 'if' else 'endfor'} {rt}"
    return "{{" + left + " " + value(body) + " " + right + "}}"


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
