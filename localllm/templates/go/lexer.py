"""Go template text as tokens: text between actions, and the tokens inside `{{ }}`.

As in Go's `text/template/parse/lex.go`: `{{- ` trims the white space before an
action, ` -}}` the white space after it (space, tab, CR, LF); `{{/* */}}` is a
comment; inside an action come identifiers and keywords, `.Field` chains,
`$variables`, numbers, "strings", `raw strings`, 'c'haracters, and the
punctuation `:= = | ( ) ,`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localllm.templates.go.errors import TemplateError

KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template",
     "with", "true", "false"}
)  # fmt: skip
SPACE = " \t\r\n"

_NUMBER = re.compile(
    r"[+-]?(0[xX][0-9a-fA-F_]+(\.[0-9a-fA-F_]*)?([pP][+-]?\d+)?|0[bB][01_]+|0[oO][0-7_]+"
    r"|(\d[\d_]*)?\.?\d[\d_]*([eE][+-]?\d+)?i?)"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Token:
    kind: str
    """text, left, right, ident, keyword, field, variable, dot, number, string, raw,
    char, bool, nil, declare, assign, pipe, lparen, rparen, comma, comment, eof"""
    value: str
    line: int
    pos: int = -1
    """Where the token starts in the text: adjacent tokens (`$x.Field`, `(...).Field`)
    chain, as in Go."""

    @property
    def end(self) -> int:
        return self.pos + len(self.value)


def tokenize(text: str) -> list[Token]:
    """Every token of `text`, ending with `eof`; TemplateError with the line if the
    text cannot be split (an unclosed action, string or comment)."""
    tokens: list[Token] = []
    pos, line = 0, 1
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        trim_before = start >= 0 and text.startswith("{{-", start) and _space_at(text, start + 3)
        if trim_next:
            chunk = chunk.lstrip(SPACE)
        if trim_before:
            chunk = chunk.rstrip(SPACE)
        if chunk:
            tokens.append(Token("text", chunk, line))
        line += text.count("\n", pos, start if start >= 0 else len(text))
        if start < 0:
            break
        inner = start + (4 if trim_before else 2)
        tokens.append(Token("left", "{{", line))
        pos, line, trim_next = _action(text, inner, line, tokens)
    tokens.append(Token("eof", "", line))
    return tokens


def _space_at(text: str, i: int) -> bool:
    return i < len(text) and text[i] in SPACE


def _action(text: str, i: int, line: int, tokens: list[Token]) -> tuple[int, int, bool]:
    """Tokens of one action from `i` (after `{{` and its trim marker); returns the
    position after `}}`, the line there, and whether the action trims what follows."""
    j = i
    while j < len(text) and text[j] in SPACE:
        j += 1
    if text.startswith("/*", j):
        end = text.find("*/", j + 2)
        if end < 0:
            raise TemplateError(f"template: :{line}: unclosed comment")
        comment = text[j : end + 2]
        line += comment.count("\n")
        k = end + 2
        trim = (
            text.startswith(" -}}", k) or text.startswith("\t-}}", k) or text.startswith("\n-}}", k)
        )
        if trim:
            k += 4
        elif text.startswith("}}", k):
            k += 2
        else:
            raise TemplateError(f"template: :{line}: comment ends before closing delimiter")
        tokens.append(Token("comment", comment, line))
        tokens.append(Token("right", "}}", line))
        return k, line, trim
    while True:
        if i >= len(text):
            raise TemplateError(f"template: :{line}: unclosed action")
        c = text[i]
        if c in SPACE:
            if text.startswith("-}}", i + 1):
                tokens.append(Token("right", "}}", line))
                return i + 4, line + (c == "\n"), True
            line += c == "\n"
            i += 1
            continue
        if text.startswith("}}", i):
            tokens.append(Token("right", "}}", line))
            return i + 2, line, False
        i, line = _one(text, i, line, tokens)


def _one(text: str, i: int, line: int, tokens: list[Token]) -> tuple[int, int]:
    c = text[i]
    simple = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma"}
    if c in simple:
        tokens.append(Token(simple[c], c, line, i))
        return i + 1, line
    if text.startswith(":=", i):
        tokens.append(Token("declare", ":=", line, i))
        return i + 2, line
    if c == "=":
        tokens.append(Token("assign", "=", line, i))
        return i + 1, line
    if c == '"':
        end = i + 1
        while end < len(text) and text[end] != '"':
            if text[end] == "\n":
                raise TemplateError(f"template: :{line}: unterminated quoted string")
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise TemplateError(f"template: :{line}: unterminated quoted string")
        tokens.append(Token("string", text[i : end + 1], line, i))
        return end + 1, line
    if c == "`":
        end = text.find("`", i + 1)
        if end < 0:
            raise TemplateError(f"template: :{line}: unterminated raw quoted string")
        raw = text[i : end + 1]
        tokens.append(Token("raw", raw, line, i))
        return end + 1, line + raw.count("\n")
    if c == "'":
        end = i + 1
        while end < len(text) and text[end] != "'":
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise TemplateError(f"template: :{line}: unterminated character constant")
        tokens.append(Token("char", text[i : end + 1], line, i))
        return end + 1, line
    if c == "$":
        match = _IDENT.match(text, i + 1)
        name = "$" + (match.group(0) if match else "")
        tokens.append(Token("variable", name, line, i))
        return i + len(name), line
    if c == ".":
        match = _IDENT.match(text, i + 1)
        if match:
            tokens.append(Token("field", "." + match.group(0), line, i))
            return match.end(), line
        if i + 1 < len(text) and text[i + 1].isdigit():
            return _number(text, i, line, tokens)
        tokens.append(Token("dot", ".", line, i))
        return i + 1, line
    if c.isdigit() or (
        c in "+-" and i + 1 < len(text) and (text[i + 1].isdigit() or text[i + 1] == ".")
    ):
        return _number(text, i, line, tokens)
    match = _IDENT.match(text, i)
    if match:
        word = match.group(0)
        kind = "keyword" if word in KEYWORDS else "ident"
        if word in ("true", "false"):
            kind = "bool"
        elif word == "nil":
            kind = "nil"
        tokens.append(Token(kind, word, line, i))
        return match.end(), line
    raise TemplateError(f"template: :{line}: unexpected {c!r} in command")


def _number(text: str, i: int, line: int, tokens: list[Token]) -> tuple[int, int]:
    match = _NUMBER.match(text, i)
    if not match or not match.group(0):
        raise TemplateError(f"template: :{line}: bad number syntax: {text[i : i + 10]!r}")
    end = match.end()
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        raise TemplateError(f"template: :{line}: bad number syntax: {text[i : end + 1]!r}")
    tokens.append(Token("number", match.group(0), line, i))
    return end, line
