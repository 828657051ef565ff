"""Go's view of Python values: truth, printing (`fmt`'s `%v`), comparison, JSON.

Dicts are Go maps, except `Struct` (a dict whose fields all exist: Go structs are
always true and a missing field is an error, not a zero value). A value with a
`go_string()` method prints through it (Go's `fmt.Stringer`).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


class Struct(dict[str, Any]):
    """A Go struct: its fields in order; true even when empty."""

    type_name = "struct"


class NoValue:
    """What a missing map key gives (Go prints `<no value>`)."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = NoValue()


def truth(value: Any) -> bool:
    """Go's `isTrue`: false, 0, nil, and empty strings, slices and maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, Struct):
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | complex):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def go_float(value: float) -> str:
    """`%v` of a float64: the shortest digits that read back the same, in `%e` form
    when the exponent is below -4 or at least 6 (`strconv.FormatFloat(f, 'g', -1, 64)`:
    Go prints 1e+06 for a million)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exp = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    point = len(text) + exp  # digits before the decimal point
    minus = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        e = point - 1
        return f"{minus}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def show(value: Any, top: bool = True) -> str:
    """`fmt.Sprint(value)`: what `{{ value }}` prints."""
    stringer = getattr(value, "go_string", None)
    if callable(stringer):
        return str(stringer())
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Struct):
        return "{" + " ".join(show(v, False) for v in value.values()) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: sort_key(kv[0]))
        return "map[" + " ".join(f"{show(k, False)}:{show(v, False)}" for k, v in items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(show(v, False) for v in value) + "]"
    return str(value)


def sort_key(value: Any) -> tuple[int, Any]:
    """Go sorts map keys by their value, numbers before strings here."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def kind(value: Any) -> str:
    """The Go kind of a value, for comparisons and error messages."""
    if value is None or value is NO_VALUE:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Struct):
        return value.type_name
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return type(value).__name__


def go_json(value: Any) -> str:
    """`json.Marshal(value)`: compact, keys of maps sorted, `<`, `>` and `&` escaped."""
    text = json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: Any) -> Any:
    to_json = getattr(value, "go_json", None)
    if callable(to_json):
        return _plain(to_json())
    if value is NO_VALUE:
        return None
    if isinstance(value, Struct):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): _plain(value[k]) for k in sorted(value, key=sort_key)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)  # Go writes float64(3) as 3
    return value
