"""Model names as stored: `[NAMESPACE/]MODEL[:TAG]`, validated before any file is touched.

A name becomes a path under the store, so nothing that could leave it gets
through: no `..`, no separators beyond the one namespace slash, no control
characters, nothing absurdly long. Names are case-insensitive and kept lower
case, as Ollama's are; the tag defaults to `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localllm.errors import LocalLLMError

DEFAULT_TAG = "latest"
MAX_PART = 80
_PART = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class ModelNameError(LocalLLMError):
    """A model name that cannot be stored."""


@dataclass(frozen=True, order=True)
class ModelName:
    model: str
    tag: str = DEFAULT_TAG
    namespace: str | None = None

    def __str__(self) -> str:
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{prefix}{self.model}:{self.tag}"

    @property
    def short(self) -> str:
        """As users type it: `:latest` left out."""
        text = str(self)
        return text.removesuffix(f":{DEFAULT_TAG}")


def parse_name(text: str) -> ModelName:
    """`llama3.2:3b`, `me/assistant`, `Qwen2.5:7B-Q8_0` -> a validated ModelName."""
    raw = text.strip()
    if not raw:
        raise ModelNameError("a model name cannot be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ModelNameError(f"{raw!r}: control characters are not allowed in model names")
    if len(raw) > 2 * MAX_PART + 2:
        raise ModelNameError(
            f"{raw[:40]!r}...: a model name is at most {2 * MAX_PART + 2} characters"
        )
    lowered = raw.lower()
    name_part, _, tag = lowered.partition(":")
    if ":" in tag:
        raise ModelNameError(f"{raw!r}: only one ':' separates the model from its tag")
    namespace, slash, model = name_part.rpartition("/")
    if slash and not namespace:
        raise ModelNameError(f"{raw!r}: a name cannot start with '/'")
    if "/" in namespace or "\\" in lowered:
        raise ModelNameError(f"{raw!r}: a name has at most one '/' (NAMESPACE/MODEL)")
    parts = [("model", model), ("tag", tag or DEFAULT_TAG)]
    if namespace:
        parts.append(("namespace", namespace))
    for what, part in parts:
        if len(part) > MAX_PART:
            raise ModelNameError(f"{raw!r}: the {what} is longer than {MAX_PART} characters")
        if not _PART.match(part) or ".." in part:
            raise ModelNameError(
                f"{raw!r}: the {what} {part!r} may hold only letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )
    return ModelName(model=model, tag=tag or DEFAULT_TAG, namespace=namespace or None)
