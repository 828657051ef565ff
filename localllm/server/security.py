"""Refuse requests a local server should never serve, before any route runs.

- DNS rebinding: a web page can make a browser send requests to 127.0.0.1
  under its own host name; the `Host` header must name this machine
  (loopback names, the listening address, `LOCALLLM_ALLOWED_HOSTS`). A server
  listening on every address (0.0.0.0) also takes an IP address (rebinding needs
  a name), this machine's host name and `*.local`/`*.internal` names, as Ollama
  does; with an API key it relies on the key instead (a page cannot send it).
- Cross-origin pages: a request carrying an `Origin` that is not allowed is
  refused outright (403), not merely answered without CORS headers: a
  "simple" POST would otherwise still run a generation. Allowed origins get
  their CORS headers from Starlette's `CORSMiddleware`.
- API keys (`server.keys`): once any exists, every request from beyond loopback
  (from loopback too with `--require-keys` or `LOCALLLM_API_KEY`) but a CORS
  preflight must send one, whose scopes cover the path (403 otherwise); a key over
  its limit gets 429 with `Retry-After`. A loopback client's key that is not known
  counts as no key at all, since apps that insist on a key field send a made-up one
  such as "ollama".
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import math
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from localllm.inference import record
from localllm.server.errors import error_body
from localllm.server.keys import KeyRing, Limiter, scope_of
from localllm.server.settings import ServerSettings

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "*.localhost")


def origin_regex(patterns: tuple[str, ...]) -> str:
    """One regex for every allowed origin (`*` matches any run of characters)."""
    return "|".join("(?:" + re.escape(p).replace(r"\*", ".*") + ")" for p in patterns)


def host_name(header: str) -> str:
    """The name in a Host header, without the port (IPv6 in brackets kept bare)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        settings: ServerSettings,
        keys: KeyRing | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        """`keys` and `limiter`: the app's (its metrics and access log share them); by
        default the settings' own."""
        self.app = app
        self.settings = settings
        self.every_address = settings.host in ("0.0.0.0", "::")
        self.ip_hosts = self.every_address
        extra = _this_machine() if self.every_address else ()
        self.hosts = (*LOOPBACK_NAMES, settings.host, *extra, *settings.allowed_hosts)
        self.origins = re.compile(origin_regex(settings.origins), re.IGNORECASE)
        self.keys = keys or KeyRing.of(settings)
        self.limiter = limiter or Limiter()
        self.everyone_sends = settings.require_keys or settings.api_key is not None
        """Loopback clients send keys too."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._problem(scope, headers)
        if problem is not None:
            status, message, *wait = problem
            body = error_body(scope["path"], status, message)
            await _reject(send, status, body, wait[0] if wait else None)
            return
        await self.app(scope, receive, send)

    def _problem(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str] | tuple[int, str, float] | None:
        """(status, message[, seconds to wait]) of a refusal, or None."""
        host = host_name(headers.get("host", "")).lower()
        any_host = self.every_address and self.keys.any()  # the key stands in for the name
        if not any_host and not self._host_allowed(host):
            return 403, (
                f"host {host!r} is not allowed (DNS rebinding protection); "
                "add it to LOCALLLM_ALLOWED_HOSTS"
            )
        origin = headers.get("origin")
        if origin and not self.origins.fullmatch(origin):
            return 403, f"origin {origin!r} is not allowed; add it to LOCALLLM_ORIGINS"
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if preflight or not self.keys.any():
            return None
        sent = headers.get("authorization", "")
        secret = sent[7:].strip() if sent.lower().startswith("bearer ") else ""
        key = self.keys.find(secret or headers.get("x-api-key", "").strip())  # x-: Anthropic's
        if key is None:
            client = scope.get("client") or ("", 0)
            loopback = _is_loopback(client[0])
            if loopback and not self.everyone_sends:
                return None
            return 401, (
                "this server needs an API key: send Authorization: Bearer <key> "
                "(or x-api-key: <key>)"
            )
        needed = scope_of(scope["path"])
        if needed is not None and needed not in key.scopes:
            return 403, f"the key {key.name!r} has no {needed!r} scope (it has: " + (
                ", ".join(key.scopes) + ")"
            )
        wait = self.limiter.admit(key)
        if wait is not None:
            limit = key.requests_per_minute or key.tokens_per_minute
            unit = "requests" if key.requests_per_minute else "tokens"
            return 429, f"the key {key.name!r} is over its {limit} {unit} a minute", wait
        here = record.current()
        if here is not None:
            here.key = key.name
        return None

    def _host_allowed(self, host: str) -> bool:
        if self.ip_hosts and _is_ip(host):
            return True
        return any(fnmatch.fnmatch(host, h.lower()) for h in self.hosts)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _this_machine() -> tuple[str, ...]:
    """The names a LAN client may use for this machine."""
    name = socket.gethostname().lower()
    return (name, f"{name.split('.')[0]}.local", "*.local", "*.internal")


async def _reject(
    send: Send, status: int, error: dict[str, object], retry_after: float | None = None
) -> None:
    body = json.dumps(error).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
