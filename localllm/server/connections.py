"""Connections no client can hold: the HTTP server's configuration, and its guard.

uvicorn closes a keep-alive connection that idles after a response
(`timeout_keep_alive`), but waits forever for a request that never finishes
arriving: a client sending its headers a byte at a time (slow-loris) holds a socket
and a file descriptor for as long as it likes. `GuardedH11Protocol` gives every
connection `request_timeout_s` to send a whole request's headers (from when it
opened, or from the end of its last response), then closes it; beyond
`max_connections` open at once, a new connection gets 503 and is closed at once,
said once a minute in the log rather than once per connection. (Measured with
`benchmarks/limits.py`.) The body's own pauses are `server.limits`'.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import replace
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from localllm.server.settings import ServerSettings

log = logging.getLogger("localllm.server")
RESERVED_FDS = 128
"""File descriptors kept for what is not a client: logs, models, workers' pipes."""
_BODY = b'{"error": "too many open connections; try again in a moment"}'
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
) % (len(_BODY), _BODY)


class GuardedH11Protocol(H11Protocol):
    settings: ServerSettings = ServerSettings()
    _said_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._cycle_armed: Any = None
        if len(self.connections) > self.settings.max_connections:
            self._refuse()
            return
        self._arm()

    def _refuse(self) -> None:
        now = time.monotonic()
        if now - GuardedH11Protocol._said_at > 60:
            GuardedH11Protocol._said_at = now
            log.warning(
                "more than %d connections are open: new ones get 503 "
                "(LOCALLLM_MAX_CONNECTIONS; said once a minute)",
                self.settings.max_connections,
            )
        self.transport.write(_REFUSAL)
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._cycle_armed = self.cycle
        self._timer = self.loop.call_later(self.settings.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.cycle is self._cycle_armed and not self.transport.is_closing():
            self.transport.close()  # no whole request in time: nothing to answer

    def handle_events(self) -> None:
        super().handle_events()
        if self._timer is not None and self.cycle is not self._cycle_armed:
            self._disarm()  # a request's headers have arrived

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request has the same time to arrive

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (as Go programs do at
    start); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def http_config(app: Any, settings: ServerSettings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for `app`: the guarded protocol, idle connections closed,
    and at most as many connections as the file limit leaves room for."""
    room = max(1, raise_file_limit() - RESERVED_FDS)
    guarded = type(
        "Guarded",
        (GuardedH11Protocol,),
        {"settings": replace(settings, max_connections=min(settings.max_connections, room))},
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded,
        timeout_keep_alive=int(settings.idle_timeout_s),
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        **options,
    )
