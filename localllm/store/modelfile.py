"""Ollama's Modelfile format: parse it strictly, and write it back.

Instructions are case-insensitive, in any order: FROM (required; a second FROM
names the model's vision projector, an `mmproj` GGUF, as in Ollama), PARAMETER
(repeatable; `stop` may appear several times), TEMPLATE, SYSTEM, ADAPTER, LICENSE
(repeatable), MESSAGE, DRAFT (a small model of the same vocabulary that guesses
tokens ahead: speculative decoding). A value may span lines between `\"\"\"`
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


INT32 = 2**31 - 1
"""llama.cpp takes most counts as a C int."""
MAX_CONTEXT = 1 << 24
"""16M tokens: beyond any model's training context."""
MAX_STOP = 1024
"""Characters in one stop sequence."""


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return number

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if not low <= number <= high:  # NaN fails too
            raise ValueError(f"must be a number from {low:g} to {high:g}")
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
    if len(value) > MAX_STOP:
        raise ValueError(f"must be at most {MAX_STOP} characters")
    return value


def _kv_type(value: str) -> str:
    if value not in KV_CACHE_TYPES:
        raise ValueError(f"must be one of {', '.join(KV_CACHE_TYPES)}")
    return value


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
"""The KV cache types llama.cpp offers (as Ollama's OLLAMA_KV_CACHE_TYPE)."""

# The sampling and runtime parameters Ollama documents, with their types and the
# bounds within which llama.cpp takes them (a count past a C int, a thread count in
# the millions, a penalty window of gigabytes would end the model's worker).
PARAMETERS: Mapping[str, Callable[[str], object]] = {
    "num_ctx": _int(1, MAX_CONTEXT), "num_predict": _int(-2, INT32), "num_keep": _int(0, INT32),
    "num_batch": _int(1, 65536), "num_gpu": _int(-1, INT32), "num_thread": _int(0, 512),
    "repeat_last_n": _int(-1, MAX_CONTEXT), "seed": _int(-(2**63), 2**64 - 1),
    "top_k": _int(0, INT32), "mirostat": _int(0, 2), "temperature": _float(0.0, 1e6),
    "top_p": _float(0.0, 1.0), "min_p": _float(0.0, 1.0), "typical_p": _float(0.0, 1.0),
    "repeat_penalty": _float(0.0, 1e6), "presence_penalty": _float(-2.0, 2.0),
    "frequency_penalty": _float(-2.0, 2.0), "mirostat_eta": _float(0.0, 1e6),
    "mirostat_tau": _float(0.0, 1e6), "use_mmap": _bool, "stop": _text,
    "prompt_lookup": _bool, "draft_max": _int(0, 16), "kv_cache_type": _kv_type,
}  # fmt: skip
MAX_STOPS = 64


def parameter_value(name: str, value: object) -> object:
    """A parameter given as JSON (`/api/create`'s `parameters`, a request's `options`)
    checked by the same rules as a Modelfile line; ValueError saying what is wrong.
    `stop` takes a string or a list of them; the others one number, bool or string."""
    if name not in PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError("needs a value")
    if len(values) > (MAX_STOPS if name == "stop" else 1):
        raise ValueError("takes one value" if name != "stop" else f"at most {MAX_STOPS} stops")
    parsed = []
    for v in values:
        if isinstance(v, dict | list) or v is None:
            raise ValueError(f"must be a {'string' if name == 'stop' else 'single value'}")
        parsed.append(PARAMETERS[name](str(v).lower() if isinstance(v, bool) else str(v)))
    return parsed if name == "stop" else parsed[0]


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
    draft: str | None = None
    """The draft model: a name in the store or a GGUF path (`DRAFT`)."""
    projector: str | None = None
    """A second FROM: the vision projector's GGUF (`mmproj`), as Ollama writes it."""

    def to_text(self) -> str:
        """The Modelfile as text; parsing it gives this Modelfile back."""
        lines = [f"FROM {self.from_}"]
        if self.projector is not None:
            lines.append(f"FROM {self.projector}")
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
        if self.draft is not None:
            lines.append(f"DRAFT {self.draft}")
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
    template = system = draft = projector = None
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
            "DRAFT",
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
                if len(stops) >= MAX_STOPS:
                    raise ModelfileError(source, line_no, raw, f"at most {MAX_STOPS} stops")
                stops.append(parsed)
            else:
                params[name] = parsed
            continue
        value, i = _value(rest, lines, i, source, line_no, raw)
        if keyword == "FROM":
            if projector is not None:
                raise ModelfileError(
                    source, line_no, raw,
                    "FROM may appear at most twice: the model, then its vision projector",
                )  # fmt: skip
            if not value:
                raise ModelfileError(
                    source, line_no, raw, "FROM needs a model, a GGUF path or an hf.co reference"
                )
            if from_ is None:
                from_ = value
            else:
                projector = value
        elif keyword == "TEMPLATE":
            template = value
        elif keyword == "SYSTEM":
            system = value
        elif keyword == "ADAPTER":
            adapters.append(value)
        elif keyword == "DRAFT":
            if draft is not None:
                raise ModelfileError(source, line_no, raw, "DRAFT may appear only once")
            if not value:
                raise ModelfileError(source, line_no, raw, "DRAFT needs a model or a GGUF path")
            draft = value
        else:
            licenses.append(value)
    if from_ is None:
        raise ModelfileError(source, max(len(lines), 1), "", "a Modelfile needs a FROM line")
    return Modelfile(
        from_, params, template, system, tuple(adapters), tuple(licenses), tuple(messages), draft,
        projector,
    )  # fmt: skip


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
