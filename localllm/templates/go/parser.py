"""Tokens to a tree, as Go's `text/template/parse` does: actions, pipelines, commands,
`if`/`else if`/`range`/`with`, `define`/`template`/`block`, `break`/`continue`.
Errors say what Go says, with the line: `template: :3: unexpected {{end}}`."""

from __future__ import annotations

import ast
from typing import NoReturn

from localllm.templates.go.errors import TemplateError
from localllm.templates.go.lexer import Token, tokenize
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


class Parser:
    def __init__(self, text: str, functions: frozenset[str]) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.functions = functions
        self.defines: dict[str, list[Node]] = {}
        self.range_depth = 0
        self.vars: list[list[str]] = [["$"]]

    # --- tokens -------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, kind: str, context: str) -> Token:
        token = self.next()
        if token.kind != kind:
            self.fail(token, f"unexpected {_show(token)} in {context}")
        return token

    @staticmethod
    def fail(token: Token, message: str) -> NoReturn:
        raise TemplateError(f"template: :{token.line}: {message}")

    # --- lists ----------------------------------------------------------------------

    def parse(self) -> list[Node]:
        nodes, end = self.list_until(top=True)
        assert end is None
        return nodes

    def list_until(self, top: bool = False) -> tuple[list[Node], Token | None]:
        """Nodes up to `{{end}}` or `{{else}}` (that token, the `{{` and the keyword
        consumed), or to the end of the text at the top level."""
        nodes: list[Node] = []
        while True:
            token = self.next()
            if token.kind == "eof":
                if not top:
                    self.fail(token, "unexpected EOF")
                return nodes, None
            if token.kind == "text":
                nodes.append(Text(token.value))
                continue
            assert token.kind == "left"
            word = self.peek()
            if word.kind == "comment":
                self.next()
                self.expect("right", "comment")
                continue
            if word.kind == "keyword" and word.value in ("end", "else"):
                if top:
                    self.fail(word, f"unexpected {{{{{word.value}}}}}")
                self.next()
                return nodes, word
            node = self.action()
            if node is not None:
                nodes.append(node)

    def action(self) -> Node | None:
        token = self.peek()
        if token.kind == "keyword":
            self.next()
            word = token.value
            if word in ("if", "range", "with"):
                return self.branch(word, token)
            if word == "template":
                return self.template_call(token)
            if word == "define":
                self.define(token)
                return None
            if word == "block":
                return self.block(token)
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    self.fail(token, f"{{{{{word}}}}} outside {{{{range}}}}")
                self.expect("right", word)
                return Break(token.line) if word == "break" else Continue(token.line)
            self.fail(token, f"unexpected {_show(token)} in command")
        return Action(self.pipeline("command"))

    def branch(self, kind: str, token: Token) -> Branch:
        self.vars.append([])
        pipe = self.pipeline(kind, allow_two=kind == "range")
        if kind == "range":
            self.range_depth += 1
        body, end = self.list_until()
        if kind == "range":
            self.range_depth -= 1
        orelse: list[Node] | None = None
        assert end is not None
        if end.value == "else":
            after = self.peek()
            if kind in ("if", "with") and after.kind == "keyword" and after.value == kind:
                # `{{else if x}}` is `{{else}}{{if x}}...` sharing the one `{{end}}`.
                self.next()
                orelse = [self.branch(kind, after)]
            else:
                self.expect("right", "else")
                orelse, end2 = self.list_until()
                assert end2 is not None
                if end2.value != "end":
                    self.fail(end2, "expected end; found {{else}}")
                self.expect("right", "end")
        else:
            self.expect("right", "end")
        self.vars.pop()
        return Branch(kind, pipe, body, orelse)

    def template_call(self, token: Token) -> TemplateCall:
        name = self.template_name("template")
        pipe = None if self.peek().kind == "right" else self.pipeline("template clause")
        if pipe is None:
            self.next()
        return TemplateCall(name, pipe, token.line)

    def define(self, token: Token) -> None:
        name = self.template_name("define")
        self.expect("right", "define clause")
        self.defines[name] = self.named_body(token, "define")

    def block(self, token: Token) -> TemplateCall:
        """`{{block "name" pipe}}...{{end}}`: a define, and a call of it right here."""
        name = self.template_name("block")
        pipe = self.pipeline("block clause")
        self.defines[name] = self.named_body(token, "block")
        return TemplateCall(name, pipe, token.line)

    def template_name(self, clause: str) -> str:
        name = self.next()
        if name.kind not in ("string", "raw"):
            self.fail(name, f"unexpected {_show(name)} in {clause} clause")
        return _unquote(name)

    def named_body(self, token: Token, clause: str) -> list[Node]:
        """The body of a define or block, up to its `{{end}}`, with its own variables."""
        saved, self.vars = self.vars, [["$"]]
        body, end = self.list_until()
        self.vars = saved
        if end is None or end.value != "end":
            self.fail(token, f"unexpected {{{{else}}}} in {clause} clause")
        self.expect("right", "end")
        return body

    # --- pipelines -------------------------------------------------------------------

    def pipeline(self, context: str, allow_two: bool = False, inner: bool = False) -> Pipe:
        pipe = Pipe(self.peek().line)
        self.declarations(pipe, allow_two, context)
        end = "rparen" if inner else "right"
        while True:
            token = self.peek()
            if token.kind == end:
                self.next()
                break
            if token.kind in ("right", "rparen", "eof"):
                self.fail(token, f"unexpected {_show(token)} in {'operand' if inner else context}")
            pipe.cmds.append(self.command(end))
            if self.peek().kind == "pipe":
                self.next()
        if not pipe.cmds:
            self.fail(token, f"missing value for {context}")
        return pipe

    def declarations(self, pipe: Pipe, allow_two: bool, context: str) -> None:
        """`$x :=`, `$x =`, `$i, $v :=` at the start of a pipeline."""
        first, second = self.peek(), self.peek(1)
        if first.kind != "variable":
            return
        if second.kind in ("declare", "assign"):
            self.i += 2
            pipe.decl, pipe.assign = [first.value], second.kind == "assign"
        elif second.kind == "comma" and allow_two:
            third, fourth = self.peek(2), self.peek(3)
            if third.kind != "variable" or fourth.kind not in ("declare", "assign"):
                self.fail(third, "range can only initialize variables")
            self.i += 4
            pipe.decl, pipe.assign = [first.value, third.value], fourth.kind == "assign"
        else:
            return
        for name in pipe.decl:
            if pipe.assign:
                if not any(name in scope for scope in self.vars):
                    self.fail(first, f"undefined variable {name!r}")
            else:
                self.vars[-1].append(name)

    def command(self, end: str) -> Command:
        cmd = Command([])
        while True:
            token = self.peek()
            if token.kind in (end, "pipe", "right", "rparen", "eof"):
                if not cmd.args:
                    self.fail(token, "missing command")
                return cmd
            cmd.args.append(self.operand())

    def operand(self) -> Arg:
        token = self.next()
        node: Arg
        if token.kind == "field":
            names = [token.value[1:]]
            node = Field(self.chained(token, names))
            return node
        if token.kind == "variable":
            if not any(token.value in scope for scope in self.vars):
                self.fail(token, f"undefined variable {token.value!r}")
            return Variable(token.value, self.chained(token, []))
        if token.kind == "dot":
            node = Dot()
        elif token.kind == "nil":
            node = Nil()
        elif token.kind == "bool":
            node = Literal(token.value == "true")
        elif token.kind == "number":
            node = Literal(_number(token))
        elif token.kind in ("string", "raw"):
            node = Literal(_unquote(token))
        elif token.kind == "char":
            node = Literal(ord(str(ast.literal_eval(token.value))))
        elif token.kind == "ident":
            if token.value not in self.functions:
                self.fail(token, f'function "{token.value}" not defined')
            node = Identifier(token.value)
        elif token.kind == "lparen":
            node = self.pipeline("parenthesized pipeline", inner=True)
            close = self.tokens[self.i - 1]
            chain = self.chained(close, [])
            return Chain(node, chain) if chain else node
        else:
            self.fail(token, f"unexpected {_show(token)} in operand")
        if self.peek().kind == "field" and self.peek().pos == token.end:
            self.fail(self.peek(), f"unexpected . after term {token.value!r}")
        return node

    def chained(self, token: Token, names: list[str]) -> tuple[str, ...]:
        """The `.Field`s written right after `token` (no space between)."""
        last = token
        while self.peek().kind == "field" and self.peek().pos == last.end:
            last = self.next()
            names.append(last.value[1:])
        return tuple(names)


def _number(token: Token) -> object:
    text = token.value.replace("_", "")
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        if text.lower().lstrip("+-").startswith("0x"):
            return float.fromhex(text)
        return float(text)
    except ValueError:
        raise TemplateError(
            f"template: :{token.line}: bad number syntax: {token.value!r}"
        ) from None


def _unquote(token: Token) -> str:
    if token.kind == "raw":
        return token.value[1:-1].replace("\r", "")
    try:
        return str(ast.literal_eval(token.value))
    except (ValueError, SyntaxError):
        raise TemplateError(f"template: :{token.line}: bad string {token.value}") from None


def _show(token: Token) -> str:
    if token.kind == "right":
        return '"}}"'
    if token.kind == "eof":
        return "EOF"
    return f"<{token.value}>"
