"""Go's built-in template functions: `and or not len index slice eq ne lt le gt ge print
printf println html js urlquery call` (`and`/`or` short-circuit in the executor)."""

from __future__ import annotations

import html as _html
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from localllm.templates.go.errors import TemplateError
from localllm.templates.go.values import NO_VALUE, go_float, kind, show, truth

Function = Callable[..., Any]


def _not(value: Any) -> bool:
    return not truth(value)


def _len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())  # Go's len of a string counts bytes
    if isinstance(value, list | tuple | dict):
        return len(value)
    raise TemplateError(f"len of type {kind(value)}")


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, NO_VALUE)
        elif isinstance(value, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise TemplateError(f"cannot index slice/array with type {kind(key)}")
            if not 0 <= key < len(value):
                raise TemplateError(f"index out of range: {key}")
            value = value[key] if not isinstance(value, str) else value.encode()[key]
        elif value is None or value is NO_VALUE:
            raise TemplateError("index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {kind(value)}")
    return value


def _slice(value: Any, *bounds: Any) -> Any:
    if not isinstance(value, list | tuple | str):
        raise TemplateError(f"can't slice item of type {kind(value)}")
    if len(bounds) > 3 or (len(bounds) == 3 and isinstance(value, str)):
        raise TemplateError("too many slice indexes")
    if any(not isinstance(b, int) or isinstance(b, bool) for b in bounds):
        raise TemplateError("cannot slice with a non-integer index")
    low = bounds[0] if bounds else 0
    high = bounds[1] if len(bounds) > 1 else len(value)
    if not 0 <= low <= high <= len(value):
        raise TemplateError(f"index out of range: {high if high > len(value) else low}")
    return value[low:high]


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = kind(a), kind(b)
    if ka in ("int", "float64") and kb in ("int", "float64") and ka != kb:
        raise TemplateError("incompatible types for comparison")
    if ka != kb and "nil" not in (ka, kb):
        raise TemplateError("incompatible types for comparison")
    return a, b


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    for other in others:
        a, b = _comparable(first, other)
        if isinstance(a, list | dict) or isinstance(b, list | dict):
            raise TemplateError("non-comparable type")
        if (a is NO_VALUE or a is None) and (b is NO_VALUE or b is None):
            return True
        if a == b:
            return True
    return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    a, b = _comparable(a, b)
    if kind(a) not in ("int", "float64", "string"):
        raise TemplateError("invalid type for comparison")
    return a, b


def _lt(a: Any, b: Any) -> bool:
    a, b = _ordered(a, b)
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    a, b = _ordered(a, b)
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def sprint(*args: Any) -> str:
    """`fmt.Sprint`: spaces between operands when neither side is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(show(arg))
    return "".join(out)


def _println(*args: Any) -> str:
    return " ".join(show(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def sprintf(fmt: str, *args: Any) -> str:
    """`fmt.Sprintf` for the verbs templates use: %v %s %d %q %t %f %e %g %x %X %c %%."""
    values = list(args)
    out: list[str] = []
    pos = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if not values:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_pad(_verb(verb, values.pop(0), precision), flags, width))
    out.append(fmt[pos:])
    if values:
        out.append("%!(EXTRA " + ", ".join(f"{kind(v)}={show(v)}" for v in values) + ")")
    return "".join(out)


def _verb(verb: str, value: Any, precision: str | None) -> str:
    digits = int(precision) if precision and precision != "*" else None
    if verb in "vs":
        text = show(value)
        return text[:digits] if digits is not None and verb == "s" else text
    if verb == "q":
        return (
            '"' + show(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        )
    if verb == "t" and isinstance(value, bool):
        return show(value)
    if verb == "d" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if verb in "xX" and isinstance(value, int | str):
        text = format(value, "x") if isinstance(value, int) else value.encode().hex()
        return text.upper() if verb == "X" else text
    if verb == "c" and isinstance(value, int):
        return chr(value)
    if verb in "feEgG" and isinstance(value, int | float) and not isinstance(value, bool):
        if verb in "gG" and digits is None:
            return go_float(float(value))
        return format(float(value), f".{6 if digits is None else digits}{verb}")
    return f"%!{verb}({kind(value)}={show(value)})"


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width or width == "*":
        return text
    n = int(width)
    if "-" in flags:
        return text.ljust(n)
    return text.rjust(n, "0" if "0" in flags else " ")


def _html_escape(*args: Any) -> str:
    text = sprint(*args)
    return _html.escape(text, quote=True).replace("&#x27;", "&#39;").replace("\x00", "\ufffd")


def _js_escape(*args: Any) -> str:
    out = []
    for c in sprint(*args):
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(sprint(*args))


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise TemplateError(f"non-function of type {kind(fn)}")
    return fn(*args)


BUILTINS: dict[str, Function] = {
    "and": lambda *a: a[-1], "or": lambda *a: a[-1], "not": _not, "len": _len,
    "index": _index, "slice": _slice, "eq": _eq, "ne": _ne, "lt": _lt, "le": _le,
    "gt": _gt, "ge": _ge, "print": sprint, "printf": sprintf, "println": _println,
    "html": _html_escape, "js": _js_escape, "urlquery": _urlquery, "call": _call,
}  # fmt: skip
"""(`and` and `or` are evaluated by the executor, which stops at the deciding argument.)"""
