"""Where the server may send requests: the configured hubs, and public addresses they
redirect to, nothing else.

A pull through the API names what to fetch, so without this rule a client could make
the server request any address it can reach: its own loopback services, the private
network, a cloud's metadata endpoint (request forgery). The hubs are the Hugging Face
endpoint (`HF_ENDPOINT` when set) and `hf.co`; a URL reference must name one of them.
Downloads are redirected by the hub to its storage, so a redirect may go elsewhere,
but only to a public address, checked on every request the HTTP client sends
(redirects included), unless the hub itself is on a private address (a mirror on the
LAN, a test hub on 127.0.0.1): then that host stays allowed too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from localllm.errors import RemoteError

DEFAULT_HUB = "https://huggingface.co"
HUB_ALIASES = ("hf.co", "huggingface.co")

Resolve = Callable[[str], list[str]]


class EgressRefused(RemoteError):
    """The server was asked to fetch from an address it does not fetch from."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 403)


def _resolve(host: str) -> list[str]:
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except OSError:
        return []


def is_public(address: str) -> bool:
    """A global unicast address: not loopback, private, link-local (cloud metadata at
    169.254.169.254), shared, multicast or reserved."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Egress:
    hubs: tuple[str, ...]
    """The host names (lowercase, with `:port` where the endpoint names one) of the hubs."""
    resolve: Resolve = _resolve

    @classmethod
    def for_endpoint(cls, endpoint: str | None, resolve: Resolve = _resolve) -> Egress:
        hub = urlsplit(endpoint or DEFAULT_HUB).netloc.lower()
        return cls((hub, *HUB_ALIASES), resolve)

    def is_hub(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.netloc.lower() in self.hubs or (parts.hostname or "") in self.hubs

    def check_reference(self, url: str, where: str = "model") -> None:
        """A URL a client named: it must be on a hub."""
        if not self.is_hub(url):
            raise EgressRefused(
                f"{where}: the server fetches only from its hubs "
                f"({', '.join(self.hubs)}); {urlsplit(url).hostname or url!r} is not one"
            )

    def check_request(self, url: str) -> None:
        """Any request the HTTP client is about to send, redirects included."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise EgressRefused(f"{url}: only http and https are fetched")
        if self.is_hub(url):
            return
        host = parts.hostname or ""
        addresses = self.resolve(host)
        if not addresses or not all(is_public(a) for a in addresses):
            raise EgressRefused(
                f"a redirect to {host!r} was not followed: it is not a public address"
            )

    def hook(self, request: Any) -> None:
        """An httpx request event hook (called for every request, redirects too)."""
        self.check_request(str(request.url))

    def install(self) -> Callable[[], None]:
        """Make huggingface_hub's shared session (every pull of this process: listings,
        header reads, downloads) check each request it sends; returns what undoes it."""
        from huggingface_hub import get_session

        session = get_session()
        hooks = session.event_hooks
        hooks["request"] = [*hooks.get("request", []), self.hook]
        session.event_hooks = hooks

        def uninstall() -> None:
            now = session.event_hooks
            now["request"] = [h for h in now.get("request", []) if h != self.hook]
            session.event_hooks = now

        return uninstall
