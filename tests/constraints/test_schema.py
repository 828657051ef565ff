"""Request JSON schemas are checked in the server: each unusable one is refused with
the path of its bad part, before any worker sees it."""

from __future__ import annotations

from typing import Any

import pytest

from localllm.constraints.schema import MAX_COUNT, SchemaError, check_schema, where_of


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        # The fuzzer's finds that ended the model's worker: properties not of schemas.
        ({"type": "object", "properties": {"a": "5m"}}, "format.properties.a: '5m' is not of"),
        ({"type": "object", "properties": True}, "format.properties: True is not of type"),
        (
            {"type": "object", "properties": {"a": 9223372036854775808}},
            "format.properties.a: 9223372036854775808 is not of type",
        ),
        ({"type": 5}, "format.type:"),
        ({"anyOf": []}, "format.anyOf: [] should be non-empty"),
        ({"items": [{"type": "string"}, 7]}, "format.items"),
        ("a string", "format: a JSON schema is an object, not a string"),
        ([1, 2], "format: a JSON schema is an object, not a list"),
    ],
)
def test_a_schema_that_breaks_the_meta_schema_is_refused_at_its_path(
    schema: Any, message: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        check_schema(schema, "format")
    assert str(caught.value).startswith(message), str(caught.value)


def test_references_outside_the_schema_are_refused() -> None:
    # The converter would fetch this URL from the server's machine.
    schema = {"type": "object", "properties": {"a": {"$ref": "http://169.254.169.254/x"}}}
    with pytest.raises(SchemaError, match=r"format\.properties\.a\.\$ref: only references"):
        check_schema(schema, "format")
    check_schema({"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}, "format")


def test_counts_past_what_a_grammar_holds_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"format\.items\.maxLength: 100000 is over"):
        check_schema({"type": "array", "items": {"type": "string", "maxLength": 100_000}}, "format")
    check_schema({"type": "string", "maxLength": MAX_COUNT}, "format")


def test_data_keywords_are_not_taken_for_schemas() -> None:
    check_schema({"enum": [{"$ref": "http://x"}, {"maxLength": 10**9}]}, "format")


def test_deep_nesting_is_refused_without_a_recursion_error() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(5000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaError, match="nested"):
        check_schema(schema, "format")


def test_a_draft_07_schema_is_checked_by_its_own_meta_schema() -> None:
    draft7 = "http://json-schema.org/draft-07/schema#"
    check_schema({"$schema": draft7, "type": "object", "definitions": {}}, "format")
    with pytest.raises(SchemaError, match=r"format\.definitions"):
        check_schema({"$schema": draft7, "definitions": 3}, "format")


def test_where_names_keys_and_list_indexes() -> None:
    assert where_of("tools", [0, "function", "parameters"]) == "tools[0].function.parameters"
