"""Ollama's template values and its way of applying a template to a conversation.

Mirrors `template/template.go` of Ollama: consecutive messages of one role are
merged (`\\n\\n`, tool messages apart) and every system message also goes into
`.System`; a template that mentions `.Messages` runs once with `.System
.Messages .Tools .Response .Think .ThinkLevel .IsThinkSet`; a legacy template
(only `.System .Prompt .Response`) runs once per turn, its last run cut right
after `{{ .Response }}` so the prompt ends where the answer begins; a template
that mentions neither `messages` nor `response` gets `{{ .Response }}` appended.
Ollama's own functions: `json`, `currentDate`, `yesterdayDate`, `toTypeScriptType`.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from localllm.templates.go import Template, parse
from localllm.templates.go.nodes import Action, Arg, Branch, Chain, Field, Node, Pipe, TemplateCall
from localllm.templates.go.values import Struct, go_json

_GO_ACTION = re.compile(
    r"{{-?\s*(\.|\$|if\s|range\s|with\s|end\b|else\b|define\s|template\s|block\s|/\*)"
)


def is_go_template(text: str) -> bool:
    """Whether `text` is an Ollama Go template rather than a Jinja one: Go actions
    (`{{ .Field }}`, `{{ if`, `{{ range`...) and no Jinja statement (`{%`)."""
    return "{%" not in text and bool(_GO_ACTION.search(text))


@lru_cache(maxsize=32)
def ollama_template(text: str) -> OllamaTemplate:
    """The parsed template for `text` (parsed once per process; TemplateError if it does
    not parse)."""
    return OllamaTemplate(text)


class ToolProperty(Struct):
    type_name = "api.ToolProperty"


class _JSONMap(dict[str, Any]):
    """A map that prints as JSON (Ollama's `templateArgs`, `templateProperties`)."""

    def go_string(self) -> str:
        return go_json(dict(self))


class _JSONList(list[Any]):
    """Ollama's `templateTools`: prints as JSON."""

    def go_string(self) -> str:
        return go_json(list(self))


class _JSONStruct(Struct):
    """A struct that prints as JSON (`templateTool`), with Go's JSON field names."""

    json_names: ClassVar[Mapping[str, str]] = {}
    omit_empty: ClassVar[frozenset[str]] = frozenset()

    def go_string(self) -> str:
        return go_json(self.go_json())

    def go_json(self) -> dict[str, Any]:
        out = {}
        for key, value in self.items():
            if key in self.omit_empty and not value:
                continue
            out[self.json_names.get(key, key[:1].lower() + key[1:])] = value
        return out


class _Tool(_JSONStruct):
    type_name = "template.templateTool"
    omit_empty = frozenset({"Items"})


class _ToolFunction(_JSONStruct):
    type_name = "template.templateToolFunction"


class _Parameters(_JSONStruct):
    type_name = "template.templateToolFunctionParameters"
    json_names: ClassVar[Mapping[str, str]] = {"Defs": "$defs"}
    omit_empty = frozenset({"Defs", "Items", "Required"})


class _Property(_JSONStruct, ToolProperty):
    json_names: ClassVar[Mapping[str, str]] = {"AnyOf": "anyOf"}
    omit_empty = frozenset({"AnyOf", "Type", "Items", "Description", "Enum", "Properties",
                            "Required"})  # fmt: skip


class _PropertyType(list[str]):
    """Ollama's `PropertyType`: one type prints (and writes to JSON) as the string."""

    def go_string(self) -> str:
        return self[0] if len(self) == 1 else "[" + " ".join(self) + "]"

    def go_json(self) -> Any:
        return self[0] if len(self) == 1 else list(self)


def _property(schema: Mapping[str, Any]) -> _Property:
    kind = schema.get("type")
    types = _PropertyType([kind] if isinstance(kind, str) else list(kind or []))
    props = schema.get("properties")
    return _Property(
        AnyOf=[_property(s) for s in schema.get("anyOf", []) if isinstance(s, Mapping)],
        Type=types,
        Items=schema.get("items"),
        Description=str(schema.get("description", "")),
        Enum=list(schema.get("enum", []) or []),
        Properties=_properties(props) if isinstance(props, Mapping) else None,
        Required=list(schema.get("required", []) or []),
    )


def _properties(props: Mapping[str, Any]) -> _JSONMap:
    return _JSONMap({k: _property(v) for k, v in props.items() if isinstance(v, Mapping)})


def tools_value(tools: Sequence[Mapping[str, Any]]) -> _JSONList | None:
    """`.Tools` from OpenAI-shaped tool dicts."""
    if not tools:
        return None
    out = _JSONList()
    for tool in tools:
        function = tool.get("function", {})
        params = function.get("parameters") or {}
        out.append(
            _Tool(
                Type=tool.get("type", "function"),
                Items=tool.get("items"),
                Function=_ToolFunction(
                    Name=function.get("name", ""),
                    Description=function.get("description", ""),
                    Parameters=_Parameters(
                        Type=params.get("type", ""),
                        Defs=params.get("$defs"),
                        Items=params.get("items"),
                        Required=list(params.get("required", []) or []),
                        Properties=_properties(params.get("properties") or {}),
                    ),
                ),
            )
        )
    return out


def _message(m: Mapping[str, Any]) -> Struct:
    calls = []
    for i, call in enumerate(m.get("tool_calls") or ()):
        function = call.get("function", {})
        arguments = function.get("arguments") or {}
        calls.append(
            Struct(
                ID=call.get("id") or "",
                Function=Struct(
                    Index=function.get("index", i),
                    Name=function.get("name", ""),
                    Arguments=_JSONMap(arguments if isinstance(arguments, Mapping) else {}),
                ),
            )
        )
    message = Struct(
        Role=m.get("role", ""),
        Content=m.get("content") or "",
        Thinking=m.get("thinking") or "",
        Images=list(m.get("images") or []),
        ToolCalls=calls or None,
        ToolName=m.get("tool_name") or m.get("name") or "",
        ToolCallID=m.get("tool_call_id") or "",
    )
    message.type_name = "*template.templateMessage"
    return message


def collate(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(every system message joined, the messages with consecutive same-role ones merged)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "system":
            system.append(m.get("content") or "")
        if out and out[-1].get("role") == m.get("role") and m.get("role") != "tool":
            out[-1]["content"] = (out[-1].get("content") or "") + "\n\n" + (m.get("content") or "")
        else:
            out.append(dict(m))
    return "\n\n".join(system), out


def _today(*_: str) -> str:
    return datetime.date.today().isoformat()


def _yesterday(*_: str) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


def _typescript(value: Any) -> str:
    if not isinstance(value, ToolProperty):
        return "any"
    if value.get("AnyOf"):
        return " | ".join(_typescript(p) for p in value["AnyOf"])
    names = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}  # fmt: skip
    types = value.get("Type") or []
    return " | ".join(names.get(t, "any") for t in types) if types else "any"


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "currentDate": _today,
    "yesterdayDate": _yesterday,
    "toTypeScriptType": _typescript,
}


@dataclass(frozen=True)
class Think:
    """The request's `think`: on or off, a level ("low", "medium", "high"), and whether
    the request set it at all (templates cannot see an unset `think` otherwise)."""

    enabled: bool = False
    level: str = ""
    is_set: bool = False


class OllamaTemplate:
    """A Modelfile template, parsed once, applied as Ollama applies it."""

    def __init__(self, text: str) -> None:
        self.template: Template = parse(text, FUNCTIONS)
        names = self.template.identifiers()
        self.uses_messages = "messages" in names
        if not self.uses_messages and "response" not in names:
            self.template.root.append(Action(Pipe(0, cmds=[_response_command()])))

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        think: Think = Think(),
        prompt: str = "",
        suffix: str = "",
    ) -> str:
        thinking = {"Think": think.enabled, "ThinkLevel": think.level, "IsThinkSet": think.is_set}
        if prompt and suffix:
            return self.template.execute(
                {"Prompt": prompt, "Suffix": suffix, "Response": "", **thinking}
            )
        system, collated = collate(messages)
        if self.uses_messages:
            return self.template.execute(
                {
                    "System": system,
                    "Messages": [_message(m) for m in collated],
                    "Tools": tools_value(tools),
                    "Response": "",
                    **thinking,
                }
            )
        return self._legacy(collated, thinking)

    def _legacy(self, messages: list[dict[str, Any]], thinking: dict[str, Any]) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def execute() -> None:
            out.append(self.template.execute({**turn, **thinking}))
            turn.update(System="", Prompt="", Response="")

        for m in messages:
            role, content = m.get("role"), m.get("content") or ""
            if role == "system":
                if turn["Prompt"] or turn["Response"]:
                    execute()
                turn["System"] = content
            elif role == "user":
                if turn["Response"]:
                    execute()
                turn["Prompt"] = content
            elif role == "assistant":
                turn["Response"] = content
        last = Template(_cut_after_response(self.template.root), self.template.defines,
                        self.template.functions)  # fmt: skip
        out.append(last.execute({**turn, **thinking}))
        return "".join(out)


def _response_command() -> Any:
    from localllm.templates.go.nodes import Command

    return Command([Field(("Response",))])


def _cut_after_response(root: list[Node]) -> list[Node]:
    """A copy of `root` with everything after the first `.Response` field removed, as
    Ollama's `deleteNode` does for the last turn of a legacy template."""
    nodes = copy.deepcopy(root)
    cut = False

    def args(items: list[Arg]) -> list[Arg]:
        nonlocal cut
        kept: list[Arg] = []
        for arg in items:
            if cut:
                continue
            if isinstance(arg, Field) and "Response" in arg.names:
                cut = True
            elif isinstance(arg, Pipe):
                pipe(arg)
            elif isinstance(arg, Chain) and isinstance(arg.node, Pipe):
                pipe(arg.node)
            kept.append(arg)
        return kept

    def pipe(p: Pipe) -> bool:
        commands = []
        for cmd in p.cmds:
            cmd.args = args(cmd.args)
            if not cmd.args:
                return False
            commands.append(cmd)
        p.cmds = commands
        return bool(commands)

    def walk(items: list[Node]) -> list[Node]:
        kept: list[Node] = []
        for node in items:
            if cut:
                continue
            if isinstance(node, Action) and not pipe(node.pipe):
                continue
            if isinstance(node, Branch):
                pipe(node.pipe)
                node.body = walk(node.body)
                node.orelse = walk(node.orelse) if node.orelse is not None else None
            if isinstance(node, TemplateCall) and node.pipe is not None:
                pipe(node.pipe)
            kept.append(node)
        return kept

    return walk(nodes)
