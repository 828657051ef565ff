"""The APIs this server speaks (`localllm.dialects`), and which writes the errors of a
path: a new API is one package and one line here."""

from __future__ import annotations

from localllm.dialects import anthropic, ollama, openai
from localllm.dialects.wire import Dialect

DIALECTS: tuple[Dialect, ...] = (ollama.DIALECT, openai.DIALECT, anthropic.DIALECT)


def dialect_of(path: str) -> Dialect:
    """The dialect whose prefix of `path` is longest (Ollama's `/` for any other)."""
    return max(
        (d for d in DIALECTS if any(path.startswith(p) for p in d.prefixes)),
        key=lambda d: max(len(p) for p in d.prefixes if path.startswith(p)),
    )
