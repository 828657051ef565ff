"""Render chat messages into a prompt with the model's chat template.

The template comes from the GGUF (`tokenizer.chat_template`, Jinja) or from the
Modelfile (Jinja, or an Ollama Go template, which renders with
`localllm.templates` as Ollama renders it). Jinja renders in a sandbox with
`messages`, `tools`, `bos_token`, `eos_token`, `add_generation_prompt` (and
`system`, `prompt`, `response` for simple Modelfile templates); blocks are
trimmed as llama-cpp-python and Hugging Face do.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from localllm.errors import LocalLLMError
from localllm.templates.ollama import is_go_template

FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}{{ m['content'] }}\n{% else %}{{ m['content'] }}\n"
    "{% endif %}{% endfor %}"
)
"""For models without any template (base models): the messages' text, one after another."""


class ChatTemplateError(LocalLLMError):
    """The chat template failed on these messages."""


def _raise(message: str) -> None:
    raise ChatTemplateError(f"the chat template refused the messages: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


def render(
    template: str | None,
    messages: Sequence[dict[str, Any]],
    bos_token: str = "",
    eos_token: str = "",
    tools: Sequence[dict[str, Any]] = (),
    add_generation_prompt: bool = True,
    think: bool | None = None,
    think_level: str = "",
) -> str:
    """`think` (None: the request did not say) reaches a Go template as `.Think`,
    `.ThinkLevel`, `.IsThinkSet` and a Jinja one as `enable_thinking` (Qwen3's) and
    `reasoning_effort` (gpt-oss's), each only when set."""
    if template is not None and is_go_template(template):
        return _render_go(template, messages, tools, think, think_level)
    thinking: dict[str, Any] = {}
    if think is not None:
        thinking["enable_thinking"] = think
    if think_level:
        thinking["reasoning_effort"] = think_level
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    try:
        return str(
            _compile(template or FALLBACK_TEMPLATE).render(
                messages=list(messages),
                tools=list(tools) or None,
                bos_token=bos_token,
                eos_token=eos_token,
                add_generation_prompt=add_generation_prompt,
                system=system,
                prompt=prompt,
                response="",
                **thinking,
            )
        )
    except ChatTemplateError:
        raise
    except JinjaError as exc:
        raise ChatTemplateError(f"the chat template failed: {exc}") from None


def _render_go(
    template: str,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]],
    think: bool | None,
    think_level: str,
) -> str:
    """An Ollama Go template, applied as Ollama applies it (`localllm.templates`)."""
    from localllm.templates.go import TemplateError
    from localllm.templates.ollama import Think, ollama_template

    mode = Think(bool(think), think_level, think is not None)
    try:
        return ollama_template(template).render(messages, tools, mode)
    except TemplateError as exc:
        raise ChatTemplateError(f"the chat template failed: {exc}") from None


def supports_tools(template: str | None) -> bool:
    return template is not None and "tools" in template
