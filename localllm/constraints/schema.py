"""Check a JSON schema from a request before it is turned into a grammar.

Three things, each an error naming the path of the bad part
(`format.properties.a`):

- the schema is a JSON Schema: it validates against the meta-schema of the
  draft it names in `$schema` (2020-12 when it names none), by the
  `jsonschema` package;
- its references stay inside it (`#/...`): the converter would fetch any
  other URL, a request forgery from the server's machine;
- its counts (`maxLength`, `minItems`...) and its size stay within what a
  grammar can hold: llama.cpp expands `x{0,n}` into n rules when it compiles
  the grammar, between two decode steps of every other stream of the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from localllm.errors import LocalLLMError

MAX_COUNT = 4096
"""The largest repetition count (`maxLength`, `minItems`...) a schema may ask for."""
MAX_SCHEMA_BYTES = 256 * 1024
MAX_DEPTH = 64
"""Schemas nested deeper than this are refused (the converter recurses once per level)."""

_COUNTS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)

_DATA = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose values are JSON data, not schemas: not walked."""


class SchemaError(LocalLLMError):
    """A JSON schema in a request that cannot be used; the message names where."""


def where_of(root: str, path: Sequence[str | int]) -> str:
    """`format` + ["properties", "a", 0] -> `format.properties.a[0]`."""
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_schema(schema: Any, where: str) -> None:
    """Raise SchemaError (naming `where` and the path inside) unless `schema` is a
    JSON schema the grammar converter can take safely."""
    check_valid(schema, where)
    for path, node in _nodes(schema, []):
        _check_counts(node, path, where)


def check_valid(schema: Any, where: str) -> None:
    """Raise SchemaError unless `schema` is a JSON schema (by its meta-schema), of a
    bounded size and depth, whose references stay inside it."""
    if not isinstance(schema, dict | bool):
        raise SchemaError(f"{where}: a JSON schema is an object, not {_kind(schema)}")
    try:
        size = len(json.dumps(schema))
    except (ValueError, RecursionError):
        raise SchemaError(f"{where}: this JSON schema is nested too deeply") from None
    if size > MAX_SCHEMA_BYTES:
        raise SchemaError(
            f"{where}: this JSON schema is {size} bytes, over the {MAX_SCHEMA_BYTES} allowed"
        )
    _check_meta(schema, where)
    for path, node in _nodes(schema, []):
        if len(path) > MAX_DEPTH:
            raise SchemaError(f"{where_of(where, path)}: nested deeper than {MAX_DEPTH} levels")
        _check_ref(node, path, where)


def _nodes(value: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], Any]]:
    """Every dict in `value` with its path (lists walked too), depth first."""
    if isinstance(value, dict):
        yield path, value
        if len(path) > MAX_DEPTH:
            return
        for key, child in value.items():
            if key not in _DATA:
                yield from _nodes(child, [*path, str(key)])
    elif isinstance(value, list):
        if len(path) > MAX_DEPTH:
            return
        for i, child in enumerate(value):
            yield from _nodes(child, [*path, i])


def _check_ref(node: dict[str, Any], path: list[str | int], where: str) -> None:
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        raise SchemaError(
            f"{where_of(where, [*path, '$ref'])}: only references inside the schema "
            f"(#/...) are followed, not {ref[:80]!r}"
        )


def _check_counts(node: dict[str, Any], path: list[str | int], where: str) -> None:
    for key in _COUNTS:
        value = node.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > MAX_COUNT:
            raise SchemaError(
                f"{where_of(where, [*path, key])}: {value} is over the {MAX_COUNT} "
                "repetitions a grammar may hold"
            )


def _check_meta(schema: dict[str, Any] | bool, where: str) -> None:
    from jsonschema import Draft202012Validator, exceptions, validators

    try:
        cls = validators.validator_for(schema, default=Draft202012Validator)
        meta = cls(cls.META_SCHEMA)
        error = exceptions.best_match(meta.iter_errors(schema))
    except RecursionError:
        raise SchemaError(f"{where}: this JSON schema is nested too deeply") from None
    except Exception as exc:  # a `$schema` naming no known draft, and the like
        raise SchemaError(f"{where}: not a usable JSON schema ({exc})") from None
    if error is not None:
        raise SchemaError(f"{where_of(where, list(error.absolute_path))}: {_short(error.message)}")


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


def _kind(value: Any) -> str:
    names = {str: "a string", int: "a number", float: "a number", list: "a list"}
    return names.get(type(value), "null" if value is None else type(value).__name__)
