"""The parse tree of a Go template, as `text/template/parse` names its nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Text:
    text: str


@dataclass
class Field:
    """`.A.B`: fields of dot."""

    names: tuple[str, ...]


@dataclass
class Variable:
    """`$x.A.B` (`$` alone is the data the template started with)."""

    name: str
    names: tuple[str, ...] = ()


@dataclass
class Dot:
    pass


@dataclass
class Nil:
    pass


@dataclass
class Literal:
    """A bool, number or string constant."""

    value: object


@dataclass
class Identifier:
    """A function's name."""

    name: str


@dataclass
class Chain:
    """`(pipeline).A.B`."""

    node: Arg
    names: tuple[str, ...]


@dataclass
class Command:
    args: list[Arg]


@dataclass
class Pipe:
    line: int
    decl: list[str] = field(default_factory=list)
    """Variables the pipeline declares (`:=`) or assigns (`=`)."""
    assign: bool = False
    cmds: list[Command] = field(default_factory=list)


@dataclass
class Action:
    pipe: Pipe


@dataclass
class Branch:
    """`if`, `range` and `with`: a pipeline, its list, and an `else` list."""

    kind: str
    pipe: Pipe
    body: list[Node]
    orelse: list[Node] | None = None


@dataclass
class TemplateCall:
    name: str
    pipe: Pipe | None
    line: int


@dataclass
class Break:
    line: int


@dataclass
class Continue:
    line: int


Arg = Union[Field, Variable, Dot, Nil, Literal, Identifier, Chain, Pipe]  # noqa: UP007
Node = Union[Text, Action, Branch, TemplateCall, Break, Continue]  # noqa: UP007
