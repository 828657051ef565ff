"""The one HTTP client the CLI and the TUI use to talk to the server.

`Client` (blocking, for the CLI) and `AsyncClient` (for the TUI's event loop)
send the same requests: each call is described once by `_Call`, then sent the
blocking or the async way. Errors come back as exceptions whose message is the
server's own `{"error"}` text; a server that is not running is
`ServerNotRunning`. Streams are iterators of the NDJSON objects the Ollama API
sends; leaving a stream early closes the connection, which the server takes
as a cancel.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from localllm.errors import LocalLLMError


class ServerError(LocalLLMError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerNotRunning(LocalLLMError):
    """Nothing answers at the server's address."""


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: dict[str, Any] | None = None


def _chat(model: str, messages: list[dict[str, Any]], fields: dict[str, Any]) -> _Call:
    return _Call("POST", "/api/chat", {"model": model, "messages": messages, **fields})


def _generate(model: str, prompt: str, fields: dict[str, Any]) -> _Call:
    return _Call("POST", "/api/generate", {"model": model, "prompt": prompt, **fields})


_VERSION = _Call("GET", "/api/version")
_PS = _Call("GET", "/api/ps")
_TAGS = _Call("GET", "/api/tags")
_HARDWARE = _Call("GET", "/api/hardware")
_FIT = _Call("GET", "/api/fit")


def _show(model: str) -> _Call:
    return _Call("POST", "/api/show", {"model": model})


def _model(model: str) -> _Call:
    return _Call("GET", f"/v1/models/{model}")


def _stop(model: str) -> _Call:
    # A request with keep_alive 0, as `ollama stop` sends.
    return _Call("POST", "/api/generate", {"model": model, "keep_alive": 0})


def _load(model: str) -> _Call:
    return _Call("POST", "/api/generate", {"model": model})


def _delete(model: str) -> _Call:
    return _Call("DELETE", "/api/delete", {"model": model})


def _pull(model: str) -> _Call:
    return _Call("POST", "/api/pull", {"model": model})


class Client:
    """Blocking client: `with Client(url) as c: c.chat(...)`."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=_auth(api_key), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, json=call.body)
        except httpx.HTTPError as exc:
            raise _transport(exc, self.base_url) from None
        _raise_for(response)
        return response.json()

    def _stream(self, call: _Call) -> Iterator[dict[str, Any]]:
        try:
            with self._http.stream(
                call.method, call.path, json={**(call.body or {}), "stream": True}
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                for line in response.iter_lines():
                    chunk = _parse(line)
                    if chunk is not None:
                        yield chunk
        except httpx.HTTPError as exc:
            raise _transport(exc, self.base_url) from None

    def version(self) -> str:
        """localllm's version of the server (its `version` is the Ollama API's)."""
        return str(self._request(_VERSION)["localllm"]["version"])

    def ps(self) -> list[dict[str, Any]]:
        return list(self._request(_PS)["models"])

    def workers(self) -> list[dict[str, Any]]:
        """The server's RPC workers: listening, the model each holds, their devices."""
        return list(self._request(_PS).get("workers", []))

    def tags(self) -> list[dict[str, Any]]:
        return list(self._request(_TAGS)["models"])

    def show(self, model: str) -> dict[str, Any]:
        return dict(self._request(_show(model)))

    def load(self, model: str) -> None:
        """Load `model` (a request with no prompt), so the first answer starts sooner."""
        self._request(_load(model))

    def model(self, model: str) -> dict[str, Any]:
        """The model as apps see it (`/v1/models/{id}`): its full name and context."""
        return dict(self._request(_model(model)))

    def stop(self, model: str) -> None:
        """Unload `model` now."""
        self._request(_stop(model))

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        """Progress of a pull: `{status, digest?, total?, completed?, plan?}` lines."""
        return self._stream(_pull(model))

    def chat(
        self, model: str, messages: list[dict[str, Any]], **fields: Any
    ) -> Iterator[dict[str, Any]]:
        """The streamed chunks of one chat turn; the last has `done: true` and the timings."""
        return self._stream(_chat(model, messages, fields))

    def generate(self, model: str, prompt: str, **fields: Any) -> Iterator[dict[str, Any]]:
        return self._stream(_generate(model, prompt, fields))


class AsyncClient:
    """The same calls for an asyncio event loop (the TUI); cancelling a task that
    reads a stream closes its connection, so the server stops generating."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(base_url=base_url, headers=_auth(api_key), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, call: _Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, json=call.body)
        except httpx.HTTPError as exc:
            raise _transport(exc, self.base_url) from None
        _raise_for(response)
        return response.json()

    async def _stream(self, call: _Call) -> AsyncGenerator[dict[str, Any], None]:
        try:
            async with self._http.stream(
                call.method, call.path, json={**(call.body or {}), "stream": True}
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                async for line in response.aiter_lines():
                    chunk = _parse(line)
                    if chunk is not None:
                        yield chunk
        except httpx.HTTPError as exc:
            raise _transport(exc, self.base_url) from None

    async def version(self) -> str:
        """localllm's version of the server (its `version` is the Ollama API's)."""
        return str((await self._request(_VERSION))["localllm"]["version"])

    async def ps(self) -> list[dict[str, Any]]:
        return list((await self._request(_PS))["models"])

    async def tags(self) -> list[dict[str, Any]]:
        return list((await self._request(_TAGS))["models"])

    async def show(self, model: str) -> dict[str, Any]:
        return dict(await self._request(_show(model)))

    async def stop(self, model: str) -> None:
        await self._request(_stop(model))

    async def count(self, model: str, messages: list[dict[str, Any]]) -> int:
        """The tokens `messages` make as `model`'s prompt (its template applied)."""
        body = {"model": model, "messages": messages}
        return int((await self._request(_Call("POST", "/apply-template", body)))["tokens"])

    async def load(self, model: str) -> None:
        """Load `model` (a request with no prompt), so the first answer starts sooner."""
        await self._request(_load(model))

    async def delete(self, model: str) -> None:
        await self._request(_delete(model))

    async def hardware(self) -> dict[str, Any]:
        """The server machine's hardware report (`localllm hw --json`)."""
        return dict(await self._request(_HARDWARE))

    async def fit(self) -> list[dict[str, Any]]:
        """The planner's fit for every local model on the server's machine."""
        return list((await self._request(_FIT))["models"])

    def pull(self, model: str) -> AsyncGenerator[dict[str, Any], None]:
        return self._stream(_pull(model))

    def chat(
        self, model: str, messages: list[dict[str, Any]], **fields: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        return self._stream(_chat(model, messages, fields))


def _transport(exc: httpx.HTTPError, url: str) -> LocalLLMError:
    """A failure below HTTP as an error for a person: not running, or the link broke."""
    if isinstance(exc, httpx.ConnectError):
        return ServerNotRunning(f"no localllm server at {url}")
    if isinstance(exc, httpx.TimeoutException):
        return ServerError(504, f"the server at {url} did not answer in time")
    return ServerError(502, f"the connection to the server at {url} broke ({exc})")


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _parse(line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    chunk: dict[str, Any] = json.loads(line)
    if "error" in chunk:
        raise ServerError(500, str(chunk["error"]))
    return chunk


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
    raise ServerError(response.status_code, message)
