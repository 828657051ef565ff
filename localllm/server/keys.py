"""API keys with scopes: made by `localllm keys`, kept hashed in the data folder, read
again by a running server whenever the file changes (no restart).

A key is a name, a secret shown once (`llk_` and 43 random characters), its scopes and
an optional limit
of requests or tokens per minute. The file keeps each secret's SHA-256 only: the
secrets are 256 random bits, so a fast hash is as good as a slow one, and a stolen
file opens nothing. Scopes, one rule for every dialect:

- `chat`: generation (Ollama generate/chat, OpenAI chat/completions/responses,
  Anthropic messages);
- `embed`: embeddings and reranking;
- `manage`: pull, push, create, copy, delete, blobs, and the metrics.

Listing and showing models, the version and `ps` take any valid key. The one key of
`LOCALLLM_API_KEY` stays what it was: a key with every scope (named `default`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from localllm.errors import LocalLLMError
from localllm.inference.record import AccessRecord

if TYPE_CHECKING:
    from localllm.server.settings import ServerSettings

log = logging.getLogger("localllm.keys")
SCOPES = ("chat", "embed", "manage")
SCOPE_OF_PATH: tuple[tuple[str, str], ...] = (
    ("/api/generate", "chat"), ("/api/chat", "chat"), ("/v1/chat/completions", "chat"),
    ("/v1/completions", "chat"), ("/v1/responses", "chat"), ("/v1/messages", "chat"),
    ("/api/embed", "embed"), ("/api/embeddings", "embed"), ("/v1/embeddings", "embed"),
    ("/v1/rerank", "embed"), ("/api/pull", "manage"), ("/api/push", "manage"),
    ("/api/create", "manage"), ("/api/copy", "manage"), ("/api/delete", "manage"),
    ("/api/blobs", "manage"), ("/metrics", "manage"),
)  # fmt: skip


def scope_of(path: str) -> str | None:
    """The scope a request to `path` needs (None: any valid key)."""
    for prefix, scope in SCOPE_OF_PATH:
        if path == prefix or path.startswith(prefix + "/"):
            return scope
    return None


@dataclass(frozen=True)
class Key:
    name: str
    scopes: tuple[str, ...]
    digest: str
    """SHA-256 of the secret, hex."""
    created: str = ""
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    """0: no limit."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyFile:
    """The keys file (`<data>/keys.json`), written whole and atomically, owner-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Key]:
        """The keys; LocalLLMError for a file that is not a keys file (its content is
        never quoted: it holds the keys' hashes)."""
        try:
            raw = json.loads(self.path.read_text())
            return [Key(**{**k, "scopes": tuple(k["scopes"])}) for k in raw["keys"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            why = type(exc).__name__
            raise LocalLLMError(f"{self.path} cannot be read as keys ({why})") from None

    def add(self, name: str, scopes: tuple[str, ...], rpm: int = 0, tpm: int = 0) -> str:
        """A new key: its secret (the only time it is seen)."""
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise LocalLLMError(f"a key's name is letters, digits, '-', '_' and '.': {name!r}")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise LocalLLMError(f"scopes are {', '.join(SCOPES)}; got {', '.join(scopes)}")
        keys = self.load()
        if any(k.name == name for k in keys):
            raise LocalLLMError(f"a key named {name!r} exists: remove it first (keys rm)")
        secret = "llk_" + secrets.token_urlsafe(32)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ordered = tuple(s for s in SCOPES if s in scopes)
        self._write([*keys, Key(name, ordered, digest(secret), created, rpm, tpm)])
        return secret

    def remove(self, name: str) -> bool:
        keys = self.load()
        kept = [k for k in keys if k.name != name]
        if len(kept) == len(keys):
            return False
        self._write(kept)
        return True

    def _write(self, keys: list[Key]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [asdict(k) for k in keys]}, f, indent=2)
        partial.replace(self.path)


@dataclass
class KeyRing:
    """The server's view of the keys: the file, read again when it changes, and the key
    of `LOCALLLM_API_KEY`."""

    file: KeyFile | None
    single: str | None = None
    _keys: list[Key] = field(default_factory=list)
    _stamp: tuple[int, int] | None = None
    _broken: bool = False

    @classmethod
    def of(cls, settings: ServerSettings) -> KeyRing:
        """The keys a server with these settings takes."""
        return cls(KeyFile(settings.keys_file) if settings.keys_file else None, settings.api_key)

    def any(self) -> bool:
        """Whether any key exists (then keys are asked beyond loopback). A keys file that
        cannot be read counts as keys that nothing opens: a damaged file closes the
        server to the network rather than opening it."""
        keys = self._current()
        return self.single is not None or self._broken or bool(keys)

    def find(self, secret: str) -> Key | None:
        """The key this secret opens, or None."""
        if not secret:
            return None
        if self.single is not None and hmac.compare_digest(secret.encode(), self.single.encode()):
            return Key("default", SCOPES, "")
        wanted = digest(secret)
        for key in self._current():
            if hmac.compare_digest(wanted, key.digest):
                return key
        return None

    def _current(self) -> list[Key]:
        if self.file is None:
            return []
        try:
            st = self.file.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            self._keys, self._stamp, self._broken = [], None, False
            return []
        if stamp != self._stamp:
            try:
                self._keys, self._broken = self.file.load(), False
            except LocalLLMError as exc:
                self._keys, self._broken = [], True
                log.error("%s; every request that needs a key is refused", exc)
            self._stamp = stamp
        return self._keys


@dataclass
class Limiter:
    """Each key's requests and tokens of the last minute, against its limits."""

    window_s: float = 60.0
    _requests: dict[str, list[float]] = field(default_factory=dict)
    _tokens: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def admit(self, key: Key, now: float | None = None) -> float | None:
        """None when `key` may send one more request now (counted); else the seconds
        until it may."""
        now = time.monotonic() if now is None else now
        since = now - self.window_s
        sent = [t for t in self._requests.get(key.name, []) if t > since]
        used = [(t, n) for t, n in self._tokens.get(key.name, []) if t > since]
        self._tokens[key.name] = used
        if key.requests_per_minute and len(sent) >= key.requests_per_minute:
            self._requests[key.name] = sent
            return sent[0] - since
        if key.tokens_per_minute and sum(n for _, n in used) >= key.tokens_per_minute:
            return used[0][0] - since
        self._requests[key.name] = [*sent, now]
        return None

    def spent(self, name: str, tokens: int, now: float | None = None) -> None:
        """A request of key `name` has ended, with these prompt and generated tokens."""
        now = time.monotonic() if now is None else now
        self._tokens.setdefault(name, []).append((now, tokens))

    def observe(self, scope: object, status: int, record: AccessRecord) -> None:
        """The access log's observer: each keyed request's tokens, when it ends."""
        if record.key and record.prompt_tokens is not None:
            self.spent(record.key, record.prompt_tokens + (record.eval_tokens or 0))
