"""Ollama's Modelfile format: parse it strictly, and write it back.

Instructions are case-insensitive, in any order: FROM (required, once),
PARAMETER (repeatable; `stop` may appear several times), TEMPLATE, SYSTEM,
ADAPTER, LICENSE (repeatable), MESSAGE. A value may span lines between `\"\"\"`
fences. Unknown instructions and parameters are errors that name the file,
the line and the text, never silently dropped: a typo in `temprature` would
otherwise change nothing and nobody would know.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from localllm.errors import LocalLLMError

FENCE = '"""'
ROLES = ("system", "user", "assistant", "tool")


class ModelfileError(LocalLLMError):
    def __init__(self, source: str, line: int, text: str, problem: str) -> None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        super().__init__(f"{source}:{line}: {problem}: {shown!r}")
        self.source, self.line, self.text, self.problem = source, line, text, problem


def _int(minimum: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return parse


def _float(low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if (
            number != number
            or (low is not None and number < low)
            or (high is not None and number > high)
        ):
            raise ValueError(
                f"must be between {low} and {high}"
                if high is not None
                else f"must be at least {low}"
            )
        return number

    return parse


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _text(value: str) -> str:
    return value


# The sampling and runtime parameters Ollama documents, with their types.
PARAMETERS: Mapping[str, Callable[[str], object]] = {
    "num_ctx": _int(1), "num_predict": _int(-2), "num_keep": _int(0), "num_batch": _int(1),
    "num_gpu": _int(-1), "num_thread": _int(0), "repeat_last_n": _int(-1), "seed": _int(),
    "top_k": _int(0), "mirostat": _int(0), "temperature": _float(0.0), "top_p": _float(0.0, 1.0),
    "min_p": _float(0.0, 1.0), "typical_p": _float(0.0, 1.0), "repeat_penalty": _float(0.0),
    "presence_penalty": _float(-2.0, 2.0), "frequency_penalty": _float(-2.0, 2.0),
    "mirostat_eta": _float(0.0), "mirostat_tau": _float(0.0), "use_mmap": _bool, "stop": _text,
}  # fmt: skip


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Modelfile:
    from_: str
    parameters: dict[str, object] = field(default_factory=dict)
    """Parsed values; `stop` is a list of strings."""
    template: str | None = None
    system: str | None = None
    adapters: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()

    def to_text(self) -> str:
        """The Modelfile as text; parsing it gives this Modelfile back."""
        lines = [f"FROM {self.from_}"]
        for name, value in self.parameters.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                shown = str(v).lower() if isinstance(v, bool) else str(v)
                lines.append(f"PARAMETER {name} {_quote(shown) if name == 'stop' else shown}")
        if self.template is not None:
            lines.append(f"TEMPLATE {_block(self.template)}")
        if self.system is not None:
            lines.append(f"SYSTEM {_block(self.system)}")
        lines += [f"ADAPTER {a}" for a in self.adapters]
        lines += [f"LICENSE {_block(text)}" for text in self.licenses]
        lines += [f"MESSAGE {m.role} {_block(m.content)}" for m in self.messages]
        return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _block(value: str) -> str:
    return (
        f"{FENCE}{value}{FENCE}"
        if ("\n" in value or value != value.strip() or not value)
        else value
    )


def parse_modelfile(text: str, source: str = "Modelfile") -> Modelfile:
    """Parse a Modelfile; raises ModelfileError naming `source`, the line and the text."""
    lines = text.splitlines()
    i = 0
    from_: str | None = None
    params: dict[str, object] = {}
    template = system = None
    adapters: list[str] = []
    licenses: list[str] = []
    messages: list[Message] = []
    while i < len(lines):
        line_no, raw = i + 1, lines[i]
        stripped = raw.strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword not in (
            "FROM",
            "PARAMETER",
            "TEMPLATE",
            "SYSTEM",
            "ADAPTER",
            "LICENSE",
            "MESSAGE",
        ):
            raise ModelfileError(source, line_no, raw, f"unknown instruction {keyword}")
        if keyword == "MESSAGE":
            role, _, rest = rest.partition(" ")
            if role.lower() not in ROLES:
                raise ModelfileError(
                    source, line_no, raw, f"MESSAGE role must be one of {', '.join(ROLES)}"
                )
            value, i = _value(rest.strip(), lines, i, source, line_no, raw)
            messages.append(Message(role.lower(), value))
            continue
        if keyword == "PARAMETER":
            name, _, value_text = rest.partition(" ")
            name = name.lower()
            value_text = _unquote(value_text.strip())
            if name not in PARAMETERS:
                raise ModelfileError(source, line_no, raw, f"unknown parameter {name!r}")
            if not value_text:
                raise ModelfileError(source, line_no, raw, f"PARAMETER {name} needs a value")
            try:
                parsed = PARAMETERS[name](value_text)
            except ValueError as exc:
                raise ModelfileError(
                    source, line_no, raw, f"bad value for {name} ({exc})"
                ) from None
            if name == "stop":
                stops = params.setdefault("stop", [])
                assert isinstance(stops, list)
                stops.append(parsed)
            else:
                params[name] = parsed
            continue
        value, i = _value(rest, lines, i, source, line_no, raw)
        if keyword == "FROM":
            if from_ is not None:
                raise ModelfileError(source, line_no, raw, "FROM may appear only once")
            if not value:
                raise ModelfileError(
                    source, line_no, raw, "FROM needs a model, a GGUF path or an hf.co reference"
                )
            from_ = value
        elif keyword == "TEMPLATE":
            template = value
        elif keyword == "SYSTEM":
            system = value
        elif keyword == "ADAPTER":
            adapters.append(value)
        else:
            licenses.append(value)
    if from_ is None:
        raise ModelfileError(source, max(len(lines), 1), "", "a Modelfile needs a FROM line")
    return Modelfile(
        from_, params, template, system, tuple(adapters), tuple(licenses), tuple(messages)
    )


def _value(
    rest: str, lines: list[str], i: int, source: str, line_no: int, raw: str
) -> tuple[str, int]:
    """A value: the rest of the line, or a `\"\"\"` block that may span lines."""
    if not rest.startswith(FENCE):
        return _unquote(rest), i
    body = rest[len(FENCE) :]
    if FENCE in body:
        value, _, after = body.partition(FENCE)
        if after.strip():
            raise ModelfileError(source, line_no, raw, 'text after the closing """')
        return value, i
    parts = [body]
    while i < len(lines):
        line = lines[i]
        i += 1
        if FENCE in line:
            head, _, after = line.partition(FENCE)
            if after.strip():
                raise ModelfileError(source, i, line, 'text after the closing """')
            parts.append(head)
            return "\n".join(parts), i
        parts.append(line)
    raise ModelfileError(source, line_no, raw, 'this """ block is never closed')


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
