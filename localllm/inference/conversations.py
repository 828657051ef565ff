"""Answers kept so a later request can continue them (OpenAI's `previous_response_id`).

Each kept answer is one JSON file in the server's data folder: its conversation in
the core's messages (the answer's own turn included, so a continuation is the same
request a client sending the whole conversation would make) and the response object
as it was sent (for `GET /v1/responses/{id}`). Files older than `ttl_s` are gone, and
beyond `max_bytes` the oldest go first. Ids are checked against their one shape
before they touch a path.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localllm.inference.request import CallIn, ImageIn, Message, Part, Text
from localllm.store.atomic import atomic_write

TTL_S = 30 * 86400.0
"""OpenAI keeps responses for 30 days."""
MAX_BYTES = 256 << 20
_ID = re.compile(r"resp_[0-9a-f]{24}")


@dataclass(frozen=True)
class Kept:
    messages: tuple[Message, ...]
    response: dict[str, Any]


class Conversations:
    def __init__(self, folder: Path, ttl_s: float = TTL_S, max_bytes: int = MAX_BYTES) -> None:
        self.folder = folder
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes

    def put(self, rid: str, messages: tuple[Message, ...], response: dict[str, Any]) -> None:
        path = self._path(rid)
        if path is None:
            return
        data = {"messages": [_message_json(m) for m in messages], "response": response}
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(data).encode())
        self._prune()

    def get(self, rid: str) -> Kept | None:
        path = self._path(rid)
        if path is None or not path.is_file() or self._expired(path):
            return None
        try:
            data = json.loads(path.read_bytes())
            messages = tuple(_message(m) for m in data["messages"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # damaged: as if it had expired
        return Kept(messages, data["response"])

    def delete(self, rid: str) -> bool:
        path = self._path(rid)
        if path is None or not path.is_file():
            return False
        path.unlink(missing_ok=True)
        return True

    def _path(self, rid: str) -> Path | None:
        return self.folder / f"{rid}.json" if _ID.fullmatch(rid) else None

    def _expired(self, path: Path) -> bool:
        return time.time() - path.stat().st_mtime > self.ttl_s

    def _prune(self) -> None:
        """The expired, then the oldest beyond `max_bytes` (each file's stat read once)."""
        kept = sorted(((p, p.stat()) for p in self.folder.glob("resp_*.json")),
                      key=lambda item: item[1].st_mtime)  # fmt: skip
        total = sum(stat.st_size for _, stat in kept)
        oldest = time.time() - self.ttl_s
        for path, stat in kept:
            if total <= self.max_bytes and stat.st_mtime >= oldest:
                break
            total -= stat.st_size
            path.unlink(missing_ok=True)


def _part_json(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    data = base64.b64encode(part.data).decode() if part.data is not None else None
    return {"image": data, "url": part.url, "where": part.where}


def _part(data: dict[str, Any]) -> Part:
    if "text" in data:
        return Text(str(data["text"]))
    raw = base64.b64decode(data["image"]) if data.get("image") else None
    return ImageIn(str(data.get("where", "")), raw, data.get("url"))


def _message_json(m: Message) -> dict[str, Any]:
    return {"role": m.role, "content": [_part_json(p) for p in m.content],
            "thinking": m.thinking, "tool_call_id": m.tool_call_id, "name": m.name,
            "tool_calls": [{"name": c.name, "arguments": dict(c.arguments), "id": c.id}
                           for c in m.tool_calls]}  # fmt: skip


def _message(data: dict[str, Any]) -> Message:
    calls = tuple(CallIn(c["name"], c["arguments"], c.get("id", "")) for c in data["tool_calls"])
    return Message(data["role"], tuple(_part(p) for p in data["content"]), data["thinking"],
                   calls, data["tool_call_id"], data["name"])  # fmt: skip
