"""Mutated requests against every endpoint of both APIs, from a seed.

Each request starts from a valid body of its endpoint and gets one to three
mutations: a value somewhere in it (at any depth) swapped for a hostile one
(wrong type, huge or negative number, long or odd string, deep nesting, a
schema that is not one), a field dropped, an unknown one added; or the body
itself broken (cut short, not UTF-8, NaN literals, nested thousands deep).
Shared by the suite's bounded fuzz test and `benchmarks/fuzz.py`; the model
names it uses are `tiny` (read only: nothing here deletes or overwrites it)
and `fuzz-*` (made and removed by the requests themselves).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "the weather", "parameters": CITY},
}
USER = [{"role": "user", "content": "hi"}]
LIMIT = {"num_predict": 8}

BASES: list[tuple[str, str, Any]] = [
    ("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "stream": False, "options": LIMIT}),
    ("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "format": SCHEMA,
                               "options": {**LIMIT, "temperature": 0.5, "seed": 3}}),
    ("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "raw": True,
                               "keep_alive": "5m", "options": {**LIMIT, "stop": ["x"]}}),
    ("POST", "/api/chat", {"model": "tiny", "messages": USER, "options": LIMIT}),
    ("POST", "/api/chat", {"model": "tiny", "messages": USER, "stream": False, "tools": [TOOL],
                           "format": "json", "options": {**LIMIT, "top_k": 5, "top_p": 0.9}}),
    ("POST", "/api/embed", {"model": "tiny", "input": ["a", "b"]}),
    ("POST", "/api/embeddings", {"model": "tiny", "prompt": "a"}),
    ("POST", "/api/show", {"model": "tiny", "verbose": True}),
    ("POST", "/api/create", {"model": "fuzz-made", "from": "tiny", "system": "s",
                             "parameters": {"temperature": 0.5, "stop": ["x"]},
                             "template": "{{ .System }}{{ .Prompt }}", "stream": False}),
    ("POST", "/api/create", {"model": "fuzz-file", "modelfile": "FROM tiny\nPARAMETER top_k 3\n"}),
    ("POST", "/api/copy", {"source": "tiny", "destination": "fuzz-copy"}),
    ("DELETE", "/api/delete", {"model": "fuzz-copy"}),
    ("POST", "/api/pull", {"model": "hf.co/fuzz/none-GGUF", "stream": False}),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": USER, "max_tokens": 8,
                                      "temperature": 0.7, "seed": 1, "stop": ["x"]}),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": USER, "max_tokens": 8,
                                      "stream": True, "tools": [TOOL], "tool_choice": "auto",
                                      "response_format": {"type": "json_schema",
                                                          "json_schema": {"schema": SCHEMA}}}),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 8,
                                 "stream": True, "stream_options": {"include_usage": True}}),
    ("POST", "/v1/embeddings", {"model": "tiny", "input": ["a"], "encoding_format": "float"}),
    ("POST", "/api/chat", {"model": "tiny", "messages": USER, "stream": False, "think": True,
                           "logprobs": True, "top_logprobs": 3, "options": LIMIT}),
    ("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "logprobs": True, "think": False,
                               "options": LIMIT}),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": USER, "max_tokens": 8,
                                      "logprobs": True, "top_logprobs": 2, "stream": True,
                                      "reasoning_effort": "low"}),
    ("POST", "/apply-template", {"model": "tiny", "messages": USER, "tools": [TOOL],
                                 "think": False}),
    ("POST", "/api/create", {"model": "fuzz-go", "from": "tiny", "stream": False,
                             "template": "{{- range $i, $m := .Messages }}{{ if eq .Role "
                                         "\"user\" }}U:{{ .Content }}{{ end }}{{ end }}"}),
    ("POST", "/api/generate", {"model": "tiny", "prompt": "def f(", "suffix": "return 1",
                               "shift": True, "options": {**LIMIT, "num_keep": 2}}),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 8,
                                 "logprobs": 3, "suffix": "end"}),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": USER, "max_tokens": 8,
                                      "tools": [TOOL], "tool_choice": "required",
                                      "stream": True}),
    ("POST", "/v1/messages", {"model": "tiny", "max_tokens": 8, "system": "s", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "weather",
                                           "input": {"city": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "sunny"}, {"type": "text", "text": "ok"}]}],
        "tools": [{"name": "weather", "input_schema": CITY}],
        "tool_choice": {"type": "auto"}, "stop_sequences": ["x"]}),
    ("POST", "/v1/messages", {"model": "tiny", "max_tokens": 8, "messages": USER, "stream": True,
                              "thinking": {"type": "disabled"},
                              "output_config": {"format": {"type": "json_schema",
                                                           "schema": SCHEMA}}}),
    ("POST", "/v1/messages/count_tokens", {"model": "tiny", "messages": USER}),
    ("POST", "/v1/responses", {"model": "tiny", "instructions": "s", "max_output_tokens": 8,
                               "input": [{"role": "user", "content": "hi"},
                                         {"type": "function_call", "call_id": "c1",
                                          "name": "weather", "arguments": "{}"},
                                         {"type": "function_call_output", "call_id": "c1",
                                          "output": "sunny"}],
                               "tools": [{"type": "function", "name": "weather",
                                          "parameters": CITY}]}),
    ("POST", "/v1/responses", {"model": "tiny", "input": "hi", "stream": True,
                               "max_output_tokens": 8, "reasoning": {"effort": "none"},
                               "text": {"format": {"type": "json_schema", "name": "a",
                                                   "schema": SCHEMA}}}),
    ("POST", "/api/blobs/sha256:" + "0" * 64, {"not": "the blob"}),
    ("POST", "/api/create", {"model": "fuzz-blob", "files": {"m.gguf": "sha256:" + "0" * 64},
                             "stream": False}),
    ("GET", "/v1/models/tiny", None),
    ("GET", "/v1/models", None),
    ("GET", "/api/tags", None),
    ("GET", "/api/ps", None),
    ("GET", "/api/version", None),
    ("GET", "/", None),
    ("GET", "/api/hardware", None),
    ("GET", "/api/fit", None),
]  # fmt: skip

_NESTED = "[" * 3000 + "]" * 3000
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1, 3, 2**31, -(2**31) - 1, 2**63, 2**64 + 1, -(2**63) - 1,
    10**30, 1e308, -1e308, 1e-308, 0.5, -0.0, "", " ", "5m", "-1", "0", "json", "null",
    "x" * 5000, "\u0000", "\u202e", "💥" * 40, "../../../etc/passwd", "hf.co/a/b",
    "nope-model", "fuzz-made", "sha256:" + "0" * 64, "{{ .Nope }}", "{% for %}", [], [1, 2],
    [[[[[]]]]], {}, {"a": "5m"}, {"type": "object", "properties": {"a": "5m"}},
    {"type": "object", "properties": True}, {"$ref": "http://127.0.0.1:9/s.json"},
    {"type": "array", "minItems": 10**9}, {"role": "system"}, [{"role": "user"}],
    [{"role": "user", "content": 5}], {"function": {"name": 5}}, json.loads("[" * 60 + "]" * 60),
]  # fmt: skip
"""Values a client might send by mistake or on purpose; never the name `tiny`."""


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    body: bytes | None

    def describe(self) -> str:
        shown = (self.body or b"")[:300].decode(errors="replace")
        return f"{self.method} {self.path} {shown}"


def requests(seed: int, count: int) -> Iterator[FuzzRequest]:
    """`count` mutated requests, the same ones for the same seed."""
    rng = random.Random(seed)
    for _ in range(count):
        method, path, base = rng.choice(BASES)
        if base is None:
            yield FuzzRequest(method, path, None)
            continue
        if rng.random() < 0.12:
            yield FuzzRequest(method, path, _broken_body(rng, base))
            continue
        body = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            body = _mutate(rng, body)
        yield FuzzRequest(method, path, json.dumps(body).encode())


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*path, i))


def _mutate(rng: random.Random, body: Any) -> Any:
    path = rng.choice(list(_paths(body)))
    if not path:
        return rng.choice(HOSTILE) if rng.random() < 0.05 else body
    parent = body
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = rng.random()
    if action < 0.6:
        parent[last] = copy.deepcopy(rng.choice(HOSTILE))
    elif action < 0.75:
        del parent[last]
    elif action < 0.85:
        parent[last] = [parent[last]]
    elif isinstance(parent, dict):
        parent[rng.choice(["unknown", "options", "format", "keep_alive", "stream", "raw"])] = (
            copy.deepcopy(rng.choice(HOSTILE))
        )
    return body


def _broken_body(rng: random.Random, base: Any) -> bytes:
    text = json.dumps(base).encode()
    kind = rng.randrange(6)
    if kind == 0:
        return text[: rng.randrange(len(text))]
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 2:
        return text.replace(b"8", b"NaN", 1).replace(b"hi", b"\xff\xfe", 1)
    if kind == 3:
        return _NESTED.encode()
    if kind == 4:
        return b'{"model": "fuzz-made", "options": {"temperature": Infinity}, "prompt": "x"}'
    return b""


@dataclass
class Tally:
    """What the server answered: statuses, and the requests that went wrong."""

    statuses: dict[int, int]
    server_errors: list[str]
    """5xx answers: the request and the message."""
    hangs: list[str]
    resets: list[str]
    """Connections the server dropped or refused."""
    by_endpoint: dict[str, dict[str, int]]
    """"POST /api/chat" -> {"2xx": n, "4xx": n, ...}."""

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.hangs) + len(self.resets)

    def count(self, low: int, high: int) -> int:
        return sum(n for status, n in self.statuses.items() if low <= status < high)


def send(client: Any, url: str, request: FuzzRequest, tally: Tally, timeout: float) -> None:
    """One request, its whole answer read (a stream to its end), tallied."""
    import httpx

    headers = {"content-type": "application/json"} if request.body is not None else {}
    counts = tally.by_endpoint.setdefault(f"{request.method} {request.path}", {})
    try:
        with client.stream(
            request.method, url + request.path, content=request.body, headers=headers,
            timeout=timeout,
        ) as response:  # fmt: skip
            text = b"".join(response.iter_bytes())
        status = response.status_code
    except httpx.TimeoutException:
        tally.hangs.append(request.describe())
        counts["hang"] = counts.get("hang", 0) + 1
        return
    except httpx.TransportError as exc:
        tally.resets.append(f"{request.describe()}: {type(exc).__name__}")
        counts["reset"] = counts.get("reset", 0) + 1
        return
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    kind = f"{status // 100}xx"
    counts[kind] = counts.get(kind, 0) + 1
    if status >= 500:
        tally.server_errors.append(f"{status} {request.describe()} -> {text[:300]!r}")


def fuzz(url: str, seed: int, count: int, concurrency: int = 4, timeout: float = 120) -> Tally:
    """`count` requests from `seed`, `concurrency` at a time, against the server at `url`."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    tally = Tally({}, [], [], [], {})
    with (
        httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        for future in [
            pool.submit(send, client, url, r, tally, timeout) for r in requests(seed, count)
        ]:
            future.result()
    return tally


INNOCENT = {
    "model": "tiny",
    "prompt": "Once upon a time",
    "raw": True,
    "options": {"temperature": 0, "num_predict": 60},
}
"""A greedy stream on the model the fuzzer hammers: it must give the same text each time."""


def innocent_text(url: str) -> str:
    """The innocent stream's text, or a `<failed ...>` line saying how it ended."""
    import httpx

    with httpx.stream("POST", url + "/api/generate", json=INNOCENT, timeout=300) as response:
        lines = [json.loads(line) for line in response.iter_lines()]
    if response.status_code != 200 or "error" in lines[-1]:
        return f"<failed: {response.status_code} {lines[-1]}>"
    return "".join(line.get("response", "") for line in lines)


def beside_innocent(url: str, work: Callable[[], T]) -> tuple[str, list[str], T]:
    """Run `work` while the innocent stream runs again and again: (its text alone, its
    texts meanwhile, what `work` returned)."""
    import threading

    alone = innocent_text(url)
    texts: list[str] = []
    finished = threading.Event()

    def innocent() -> None:
        while not finished.is_set():
            texts.append(innocent_text(url))

    thread = threading.Thread(target=innocent)
    thread.start()
    try:
        result = work()
    finally:
        finished.set()
        thread.join()
    return alone, texts, result
