"""Structured output: Ollama's `format` ("json" or a JSON schema) as a GBNF grammar.

The grammars come from llama-cpp-python's converter (a port of llama.cpp's
json-schema-to-grammar), so they accept exactly what the schema allows.
"""

from __future__ import annotations

import json
from typing import Any

from localllm.errors import LocalLLMError


class FormatError(LocalLLMError):
    """A `format` that cannot be turned into a grammar."""


def grammar_for(fmt: str | dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if fmt == "json":
        return str(JSON_GBNF)
    if not isinstance(fmt, dict):
        raise FormatError(f'format must be "json" or a JSON schema object, not {fmt!r}')
    try:
        return str(json_schema_to_gbnf(json.dumps(fmt)))
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise FormatError(f"format: this JSON schema is not supported: {exc}") from None
