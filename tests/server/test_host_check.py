"""The Host allow-list (localllm/server/security.py) on a server listening on every
address: kept without an API key (DNS rebinding needs only a name), the key's job with
one."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from localllm.server.security import SecurityMiddleware
from localllm.server.settings import ServerSettings


def status(settings: ServerSettings, host: str) -> int:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/api/version",
             "headers": [(b"host", host.encode())]}  # fmt: skip
    asyncio.run(SecurityMiddleware(app, settings)(scope, receive, send))
    return int(sent[0]["status"])


def test_insecure_on_every_address_keeps_the_host_allow_list() -> None:
    insecure = ServerSettings(host="0.0.0.0", insecure=True)
    assert status(insecure, "attacker.example:11435") == 403  # a rebinding name
    for host in ("192.168.1.20:11435", "[fe80::1]:11435", "localhost:11435",
                 f"{socket.gethostname()}:11435", "box.local"):  # fmt: skip
        assert status(insecure, host) == 200, host
    allowed = ServerSettings(host="0.0.0.0", insecure=True, allowed_hosts=("llm.example.org",))
    assert status(allowed, "llm.example.org") == 200


def test_with_a_key_every_name_may_be_used() -> None:
    keyed = ServerSettings(host="0.0.0.0", api_key="k")
    assert status(keyed, "llm.example.org") == 401  # past the Host check, asked for the key
