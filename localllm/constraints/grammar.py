"""JSON schemas and tool lists as GBNF grammars, converted in the server process.

The converter is llama-cpp-python's port of llama.cpp's json-schema-to-grammar
(`llama_cpp/llama_grammar.py`, plain Python). It is loaded from its file
rather than imported as `llama_cpp.llama_grammar`: importing the package would
load libllama (and a GPU build's CUDA libraries) into the server, which keeps
llama.cpp in the worker processes only.

Tool calls: models write them in their template's own syntax; the three in
wide use:

- Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`;
- Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`;
- Llama 3.1+: a bare `{"name": ..., "parameters": {...}}`.

The syntax is chosen from the chat template's text (`localllm.formats.format_for`),
so a forced call (`tool_choice` "required") is written the way the model was trained
to write it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from localllm.constraints.loose import loosen
from localllm.constraints.schema import SchemaError, check_schema, check_valid
from localllm.errors import describe

HERMES, MISTRAL, BARE = "hermes", "mistral", "bare"
HARMONY, DEEPSEEK, DEEPSEEK_V31 = "harmony", "deepseek", "deepseek-v3.1"
MAX_GRAMMAR_BYTES = 512 * 1024
"""Converted grammars larger than this are refused: llama.cpp compiles them in
the worker between two decode steps of every other stream."""


@cache
def _converter() -> ModuleType:
    spec = importlib.util.find_spec("llama_cpp")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise SchemaError("structured output needs llama-cpp-python, which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "llama_grammar.py"
    module_spec = importlib.util.spec_from_file_location("_localllm_llama_grammar", path)
    if module_spec is None or module_spec.loader is None:
        raise SchemaError(f"structured output: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def json_grammar() -> str:
    """Any JSON value (Ollama's `format: "json"`, OpenAI's `json_object`)."""
    return str(_converter().JSON_GBNF)


def schema_grammar(schema: Any, where: str) -> str:
    """The grammar of `schema`; SchemaError naming `where` (and the path inside it)."""
    check_schema(schema, where)
    return _convert(schema, where)


def object_grammar() -> str:
    """Any JSON object: what a schema no grammar can hold falls back to."""
    return schema_grammar({"type": "object"}, "schema")


def lenient_grammar(schema: Any, where: str) -> str:
    """The grammar of `schema`, loosened (`constraints.loose`) where the converter
    cannot take it as it is, and at worst any JSON object. SchemaError only for what is
    not a JSON schema, or a reference out of it: those are the client's mistakes."""
    check_valid(schema, where)
    try:
        return schema_grammar(schema, where)
    except SchemaError:
        pass
    try:
        return schema_grammar(loosen(schema), where)
    except SchemaError:
        return object_grammar()


def usable_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`tools` with each schema a grammar can hold: as it is, loosened, or any object
    (each converted alone once to find out). SchemaError, naming the tool, for a schema
    that is not a JSON schema or reaches outside itself."""
    out = []
    for tool in tools:
        function = tool.get("function", tool)
        parameters = function.get("parameters") or {"type": "object"}
        check_valid(parameters, f"tools.{function.get('name', '')}.parameters")
        for candidate in (parameters, loosen(parameters), {"type": "object"}):
            try:
                schema_grammar(candidate, "tools")
            except SchemaError:
                continue
            break
        out.append({**tool, "function": {**function, "parameters": candidate}})
    return out


def format_grammar(fmt: str | dict[str, Any], where: str = "format") -> str:
    """Ollama's `format`: "json" or a JSON schema."""
    if fmt == "json":
        return json_grammar()
    if not isinstance(fmt, dict):
        raise SchemaError(f'{where}: must be "json" or a JSON schema object, not {fmt!r}')
    return schema_grammar(fmt, where)


def check_tools(tools: Sequence[dict[str, Any]], where: str = "tools") -> None:
    """Each tool's `parameters` is a usable JSON schema (checked and converted once)."""
    for i, tool in enumerate(tools):
        parameters = tool.get("function", {}).get("parameters")
        if parameters is not None:
            schema_grammar(parameters, f"{where}[{i}].function.parameters")


def call_schema(tools: Sequence[dict[str, Any]], arguments_key: str) -> dict[str, Any]:
    """A JSON schema that matches exactly one call of one of `tools`."""
    choices = []
    for tool in tools:
        function = tool.get("function", tool)
        parameters = function.get("parameters") or {"type": "object"}
        choices.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, arguments_key: parameters},
                "required": ["name", arguments_key],
            }
        )
    return {"oneOf": choices}


def _named_frames() -> dict[str, tuple[str, str, str]]:
    """Syntaxes that write the name outside the arguments' JSON: the text before the
    name, between name and arguments, and after them."""
    from localllm.formats import deepseek as ds

    return {
        HARMONY: ("<|channel|>commentary to=functions.", " <|constrain|>json<|message|>", ""),
        DEEPSEEK: (
            ds.CALLS_BEGIN + ds.CALL_BEGIN + "function" + ds.SEP,
            "\n```json\n",
            "\n```" + ds.CALL_END + ds.CALLS_END,
        ),
        DEEPSEEK_V31: (ds.CALLS_BEGIN + ds.CALL_BEGIN, ds.SEP, ds.CALL_END + ds.CALLS_END),
    }


def tool_call_grammar(tools: Sequence[dict[str, Any]], syntax: str) -> str:
    """A grammar whose every sentence is one call of one of `tools`, in `syntax`."""
    tools = usable_tools(tools)
    frames = _named_frames()
    if syntax in frames:
        return _named_call_grammar(tools, frames[syntax])
    key = "parameters" if syntax == BARE else "arguments"
    rules = _convert(call_schema(tools, key), "tools")
    rules = rules.replace("root ::=", "call ::=", 1)
    wrap = {
        HERMES: 'root ::= "<tool_call>\\n" call "\\n</tool_call>"',
        MISTRAL: 'root ::= "[TOOL_CALLS][" call "]"',
        BARE: "root ::= call",
    }[syntax]
    return f"{wrap}\n{rules}"


def _named_call_grammar(tools: Sequence[dict[str, Any]], frame: tuple[str, str, str]) -> str:
    before, between, after = frame
    functions = [tool.get("function", tool) for tool in tools]
    schemas = [f.get("parameters") or {"type": "object"} for f in functions]

    def convert() -> str:
        # One converter for every tool: shared rules once, each tool's arguments `argsN`.
        converter = _converter().SchemaConverter(
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
        )
        alternatives = []
        for i, (function, schema) in enumerate(zip(functions, schemas, strict=True)):
            resolved = converter.resolve_refs(json.loads(json.dumps(schema)), f"tools[{i}]")
            rule = converter.visit(resolved, f"args{i}")
            alternatives.append(f"{_literal(function['name'] + between)} {rule}")
        end = f" {_literal(after)}" if after else ""
        root = f"root ::= {_literal(before)} ( {' | '.join(alternatives)} ){end}"
        return f"{root}\n{converter.format_grammar()}"

    return _guarded(convert, "tools")


def _literal(text: str) -> str:
    """A GBNF string literal (JSON's escapes are GBNF's)."""
    return json.dumps(text, ensure_ascii=False)


def _convert(schema: Any, where: str) -> str:
    return _guarded(lambda: str(_converter().json_schema_to_gbnf(json.dumps(schema))), where)


def _guarded(convert: Callable[[], str], where: str) -> str:
    """`convert()`, its failures as SchemaErrors naming `where`, its size checked."""
    try:
        grammar = convert()
    except RecursionError:
        raise SchemaError(f"{where}: this JSON schema is nested too deeply") from None
    except SchemaError:
        raise
    except Exception as exc:  # the converter's own refusals: asserts, KeyErrors, ...
        detail = describe(exc)
        raise SchemaError(
            f"{where}: this JSON schema cannot be turned into a grammar ({detail})"
        ) from None
    if len(grammar) > MAX_GRAMMAR_BYTES:
        raise SchemaError(
            f"{where}: this JSON schema makes a grammar of {len(grammar)} bytes, "
            f"over the {MAX_GRAMMAR_BYTES} allowed; simplify it"
        )
    return grammar
