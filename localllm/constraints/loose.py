"""A JSON schema loosened until a grammar can hold it.

Apps send schemas written for validators, not grammars: Claude Code's tools allow
strings of 524,288 characters, name a `format` or a `pattern`, and describe some
properties with nothing but a `description`. A grammar for them would be huge or
cannot be written, and refusing them would refuse the app. Where the request does
not need the exact schema (a tool the model may call, a format whose schema the
converter cannot take), the schema is loosened instead: those keywords dropped, a
property with no shape is any JSON value. The answer then still parses; it may be
longer or looser than the schema allows.
"""

from __future__ import annotations

from typing import Any

from localllm.constraints.schema import MAX_COUNT

_DROPPED = frozenset({"$schema", "$id", "$comment", "pattern", "patternProperties", "format",
                      "contentEncoding", "contentMediaType"})  # fmt: skip
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "deprecated",
                          "readOnly", "writeOnly"})  # fmt: skip
_COUNTS = frozenset({"minLength", "maxLength", "minItems", "maxItems", "minProperties",
                     "maxProperties", "minContains", "maxContains"})  # fmt: skip
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "dependentSchemas"})
_SCHEMAS = frozenset({"items", "additionalProperties", "not", "contains", "if", "then", "else",
                      "propertyNames", "unevaluatedProperties", "unevaluatedItems"})  # fmt: skip


def loosen(schema: Any) -> Any:
    """`schema` without what a grammar cannot hold well (a copy; data keywords such as
    `enum` and `const` are kept as they are)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED or key in _ANNOTATIONS:
            continue
        if key in _COUNTS and isinstance(value, int | float) and value > MAX_COUNT:
            continue
        if key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [loosen(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: loosen(v) for k, v in value.items()}
        elif key in _SCHEMAS:
            out[key] = loosen(value)
        else:
            out[key] = value
    return out
