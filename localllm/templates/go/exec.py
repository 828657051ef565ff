"""Run a parsed Go template on its data, as Go's `text/template/exec.go` does.

Pipelines pass each command's result as the last argument of the next; `$` is
the data the template started with; `range` walks lists in order, maps by
sorted key, and integers from 0; `with` and `range` set dot; variables live
until the `{{end}}` of the block that declared them. A missing map key is the
zero value (Ollama's `missingkey=zero`); a missing struct field is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from localllm.templates.go.errors import TemplateError
from localllm.templates.go.functions import BUILTINS, Function
from localllm.templates.go.nodes import (
    Action,
    Arg,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    Field,
    Identifier,
    Literal,
    Nil,
    Node,
    Pipe,
    TemplateCall,
    Text,
    Variable,
)
from localllm.templates.go.parser import Parser
from localllm.templates.go.values import NO_VALUE, Struct, kind, show, sort_key, truth

MAX_DEPTH = 100_000
"""Go's limit on nested template calls (`maxExecDepth`)."""
MAX_OUTPUT = 16 << 20
"""A template that writes more than 16 MiB is refused (a loop over a huge range)."""


@dataclass
class Template:
    """A parsed template: its top level and the templates it defines."""

    root: list[Node]
    defines: dict[str, list[Node]]
    functions: Mapping[str, Function]

    def execute(self, data: Any, limit: int = MAX_OUTPUT) -> str:
        """The text; TemplateError on a failure, or past `limit` characters."""
        run = _Run(self, data, limit)
        run.walk(data, self.root)
        return "".join(run.out)

    def identifiers(self) -> set[str]:
        """Every field name the template mentions, lowercased (Ollama's `Vars`)."""
        names: set[str] = set()

        def args(arg: Arg) -> None:
            if isinstance(arg, Field | Variable | Chain):
                names.update(n.lower() for n in arg.names)
            if isinstance(arg, Chain):
                args(arg.node)
            if isinstance(arg, Pipe):
                pipe(arg)

        def pipe(p: Pipe | None) -> None:
            for cmd in p.cmds if p else ():
                for arg in cmd.args:
                    args(arg)

        def walk(nodes: list[Node]) -> None:
            for node in nodes:
                if isinstance(node, Action):
                    pipe(node.pipe)
                elif isinstance(node, Branch):
                    pipe(node.pipe)
                    walk(node.body)
                    walk(node.orelse or [])
                elif isinstance(node, TemplateCall):
                    pipe(node.pipe)

        walk(self.root)
        for body in self.defines.values():
            walk(body)
        return names


def parse(text: str, functions: Mapping[str, Function] | None = None) -> Template:
    """Parse `text` with Go's built-in functions and `functions`; TemplateError if it
    does not parse (the message names the line)."""
    table = {**BUILTINS, **(functions or {})}
    parser = Parser(text, frozenset(table))
    root = parser.parse()
    return Template(root, parser.defines, table)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class _Run:
    template: Template
    data: Any
    limit: int
    out: list[str] = field(default_factory=list)
    size: int = 0
    vars: list[tuple[str, Any]] = field(default_factory=list)
    depth: int = 0

    def __post_init__(self) -> None:
        self.vars = [("$", self.data)]

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limit:
            raise TemplateError(f"template: the output is over {self.limit} characters")
        self.out.append(text)

    def fail(self, line: int, message: str) -> NoReturn:
        raise TemplateError(f"template: :{line}: executing: {message}")

    # --- nodes ----------------------------------------------------------------------

    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                value = self.pipe(dot, node.pipe)
                if not node.pipe.decl:
                    self.write(show(value))
            elif isinstance(node, Branch):
                self.branch(dot, node)
            elif isinstance(node, TemplateCall):
                self.call(dot, node)
            elif isinstance(node, Break):
                raise _Break
            elif isinstance(node, Continue):
                raise _Continue

    def branch(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(dot, node)
                return
            value = self.pipe(dot, node.pipe)
            if truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.orelse is not None:
                self.walk(dot, node.orelse)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: Branch) -> None:
        pipe = node.pipe
        decl, pipe.decl = pipe.decl, []  # evaluate the value, then bind per element
        try:
            value = self.pipe(dot, pipe)
        finally:
            pipe.decl = decl
        items: Iterable[tuple[Any, Any]]
        if value is None or value is NO_VALUE:
            items = ()
        elif isinstance(value, Struct):
            self.fail(pipe.line, f"range can't iterate over {show(value)}")
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value, key=sort_key)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = ((i, i) for i in range(value))  # lazily: `range 100000000` is legal
        else:
            self.fail(pipe.line, f"range can't iterate over {show(value)}")
        empty = not value if isinstance(value, int) else not items
        if empty:
            if node.orelse is not None:
                self.walk(dot, node.orelse)
            return
        mark = len(self.vars)
        for key, element in items:
            del self.vars[mark:]
            if len(decl) == 1:
                self._bind(decl[0], element, pipe.assign)
            elif len(decl) == 2:
                self._bind(decl[0], key, pipe.assign)
                self._bind(decl[1], element, pipe.assign)
            try:
                self.walk(element, node.body)
            except _Continue:
                continue
            except _Break:
                break

    def call(self, dot: Any, node: TemplateCall) -> None:
        body = self.template.defines.get(node.name)
        if body is None:
            self.fail(node.line, f'template: no such template "{node.name}"')
        value = self.pipe(dot, node.pipe) if node.pipe else NO_VALUE
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(node.line, f"exceeded maximum template depth ({MAX_DEPTH})")
        saved, self.vars = self.vars, [("$", value)]
        try:
            self.walk(value, body)
        finally:
            self.vars = saved
            self.depth -= 1

    # --- pipelines -----------------------------------------------------------------

    def pipe(self, dot: Any, pipe: Pipe) -> Any:
        value: Any = _NONE
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value, pipe.line)
        for name in pipe.decl:
            self._bind(name, value, pipe.assign)
        return value

    def _bind(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for i in range(len(self.vars) - 1, -1, -1):
                if self.vars[i][0] == name:
                    self.vars[i] = (name, value)
                    return
        self.vars.append((name, value))

    def command(self, dot: Any, cmd: Command, final: Any, line: int) -> Any:
        first = cmd.args[0]
        if isinstance(first, Nil):
            self.fail(line, "nil is not a command")
        if isinstance(first, Identifier):
            return self.function(dot, first.name, cmd.args[1:], final, line)
        if len(cmd.args) > 1 or final is not _NONE:
            if isinstance(first, Field | Variable | Chain):
                name = first.names[-1] if first.names else getattr(first, "name", "")
                self.fail(line, f"can't give argument to non-function {name}")
            self.fail(
                line, f"can't give argument to non-function {show(self.arg(dot, first, line))}"
            )
        return self.arg(dot, first, line)

    def function(self, dot: Any, name: str, args: list[Arg], final: Any, line: int) -> Any:
        fn = self.template.functions[name]
        if name in ("and", "or"):  # short-circuit: later arguments may not run
            count = len(args) + (final is not _NONE)
            if count == 0:
                self.fail(line, f"wrong number of args for {name}: want at least 1 got 0")
            result: Any = None
            for i in range(count):
                result = self.arg(dot, args[i], line) if i < len(args) else final
                if truth(result) == (name == "or"):
                    return result
            return result
        evaluated = [self.arg(dot, a, line) for a in args]
        if final is not _NONE:
            evaluated.append(final)
        try:
            return fn(*evaluated)
        except TemplateError as exc:
            self.fail(line, f"error calling {name}: {exc}")
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
            self.fail(line, f"error calling {name}: {exc}")

    def arg(self, dot: Any, arg: Arg, line: int) -> Any:
        if isinstance(arg, Field):
            return self.fields(dot, arg.names, line)
        if isinstance(arg, Variable):
            return self.fields(self.variable(arg.name, line), arg.names, line)
        if isinstance(arg, Dot):
            return dot
        if isinstance(arg, Nil):
            return None
        if isinstance(arg, Literal):
            return arg.value
        if isinstance(arg, Pipe):
            return self.pipe(dot, arg)
        if isinstance(arg, Chain):
            return self.fields(self.arg(dot, arg.node, line), arg.names, line)
        if isinstance(arg, Identifier):
            return self.function(dot, arg.name, [], _NONE, line)
        raise AssertionError(arg)

    def variable(self, name: str, line: int) -> Any:
        for key, value in reversed(self.vars):
            if key == name:
                return value
        self.fail(line, f"undefined variable: {name}")

    def fields(self, value: Any, names: tuple[str, ...], line: int) -> Any:
        for name in names:
            value = self.field(value, name, line)
        return value

    def field(self, value: Any, name: str, line: int) -> Any:
        if isinstance(value, Struct):
            if name not in value:
                self.fail(line, f"can't evaluate field {name} in type {value.type_name}")
            return value[name]
        if isinstance(value, dict):
            found = value.get(name, NO_VALUE)
            return found
        if value is None or value is NO_VALUE:
            self.fail(line, f"nil pointer evaluating interface {{}}.{name}")
        attribute = getattr(value, name, _NONE) if not name.startswith("_") else _NONE
        if attribute is not _NONE:
            return attribute() if callable(attribute) else attribute
        self.fail(line, f"can't evaluate field {name} in type {kind(value)}")


class _Missing:
    """No value passed from a previous command (Go's missingVal)."""


_NONE: Any = _Missing()
__all__ = ["Template", "parse"]
