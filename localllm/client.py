"""The one HTTP client the CLI and the TUI use to talk to the server.

Errors come back as exceptions whose message is the server's own `{"error"}`
text; a server that is not running is `ServerNotRunning`. Streams are
iterators of the NDJSON objects the Ollama API sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from localllm.errors import LocalLLMError


class ServerError(LocalLLMError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerNotRunning(LocalLLMError):
    """Nothing answers at the server's address."""


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.ConnectError:
            raise ServerNotRunning(f"no localllm server at {self.base_url}") from None
        _raise_for(response)
        return response.json()

    def version(self) -> str:
        return str(self._request("GET", "/api/version")["version"])

    def ps(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/ps")["models"])

    def tags(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/tags")["models"])

    def show(self, model: str) -> dict[str, Any]:
        return dict(self._request("POST", "/api/show", {"model": model}))

    def stop(self, model: str) -> None:
        """Unload `model` now (a request with keep_alive 0, as `ollama stop` sends)."""
        self._request("POST", "/api/generate", {"model": model, "keep_alive": 0})

    def chat(
        self, model: str, messages: list[dict[str, Any]], **fields: Any
    ) -> Iterator[dict[str, Any]]:
        """The streamed chunks of one chat turn; the last has `done: true` and the timings."""
        return self._stream("/api/chat", {"model": model, "messages": messages, **fields})

    def generate(self, model: str, prompt: str, **fields: Any) -> Iterator[dict[str, Any]]:
        return self._stream("/api/generate", {"model": model, "prompt": prompt, **fields})

    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            with self._http.stream("POST", path, json={**body, "stream": True}) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    chunk = json.loads(line)
                    if "error" in chunk:
                        raise ServerError(500, str(chunk["error"]))
                    yield chunk
        except httpx.ConnectError:
            raise ServerNotRunning(f"no localllm server at {self.base_url}") from None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
    raise ServerError(response.status_code, message)
