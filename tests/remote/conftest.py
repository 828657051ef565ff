"""The real test server of `tests/server` (its `make_server` and `store` fixtures), for
servers that place models on workers."""

from tests.live_server import make_server, store

__all__ = ["make_server", "store"]
