"""Schemas and tool lists become GBNF in the server process, without llama.cpp there."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from localllm.constraints.grammar import (
    BARE,
    HERMES,
    MISTRAL,
    check_tools,
    format_grammar,
    json_grammar,
    schema_grammar,
    tool_call_grammar,
)
from localllm.constraints.schema import SchemaError

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_format_json_and_a_schema_give_their_grammars() -> None:
    assert format_grammar("json") == json_grammar()
    assert re.search(r"^root\s+::= object$", json_grammar(), re.M)
    grammar = format_grammar({"type": "object", "properties": {"n": {"type": "integer"}}})
    assert re.search(r"^root ::= ", grammar, re.M) and "integer" in grammar


def test_a_schema_the_converter_refuses_is_a_schema_error_naming_where() -> None:
    with pytest.raises(SchemaError, match=r"^response_format: .*cannot be turned into a grammar"):
        schema_grammar({"type": "string", "pattern": "(("}, "response_format")
    with pytest.raises(SchemaError, match=r'^format: must be "json" or a JSON schema'):
        format_grammar("yaml")


def test_tool_parameters_are_checked_with_their_index() -> None:
    check_tools([WEATHER])
    bad = {"type": "function", "function": {"name": "x", "parameters": {"properties": 3}}}
    with pytest.raises(SchemaError, match=r"^tools\[1\]\.function\.parameters\.properties"):
        check_tools([WEATHER, bad])


@pytest.mark.parametrize(
    ("template", "syntax", "opening"),
    [
        ("{{ '<tool_call>' }}", HERMES, 'root ::= "<tool_call>\\n" call'),
        ("[TOOL_CALLS]", MISTRAL, 'root ::= "[TOOL_CALLS][" call "]"'),
        (None, BARE, "root ::= call"),
    ],
)
def test_a_forced_call_is_written_in_the_templates_syntax(
    template: str | None, syntax: str, opening: str
) -> None:
    from localllm.formats import format_for

    assert format_for(template).call_syntax == syntax
    grammar = tool_call_grammar([WEATHER], syntax)
    assert grammar.startswith(opening)
    assert ("parameters" if syntax == BARE else "arguments") in grammar


def test_the_server_converts_without_loading_llama_cpp() -> None:
    code = textwrap.dedent(
        """
        import sys
        from localllm.constraints.grammar import format_grammar
        format_grammar({"type": "object", "properties": {"a": {"type": "string"}}})
        print("llama_cpp" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
