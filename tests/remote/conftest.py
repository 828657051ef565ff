"""The real test server of `tests/server` (its `make_server` and `store` fixtures), for
servers that place models on workers."""

from tests.server.conftest import make_server, store

__all__ = ["make_server", "store"]
