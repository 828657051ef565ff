"""Scoped API keys on a real server: refused and accepted per scope, taken and dropped
without a restart, limited per minute, and HTTPS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from localllm.errors import ConfigError, LocalLLMError
from localllm.server.keys import KeyFile, scope_of
from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import Running

pytestmark = pytest.mark.slow
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": False,
        "options": {"num_predict": 3, "temperature": 0}}  # fmt: skip


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_every_path_has_the_scope_of_its_kind() -> None:
    assert scope_of("/api/chat") == scope_of("/v1/messages") == scope_of("/v1/responses") == "chat"
    assert scope_of("/v1/embeddings") == scope_of("/v1/rerank") == "embed"
    assert scope_of("/api/blobs/sha256:00") == scope_of("/metrics") == "manage"
    assert scope_of("/api/tags") is None and scope_of("/api/chatty") is None


def test_scopes_are_checked_and_the_file_is_read_again(
    make_server: Callable[..., Running], store: Store, tmp_path: Path
) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    chat = keys.add("app", ("chat",))
    settings = ServerSettings(port=0, keys_file=keys.path, require_keys=True)
    server = make_server(store, settings)
    url = server.url
    assert httpx.post(f"{url}/api/chat", json=CHAT, timeout=30).status_code == 401
    assert httpx.post(f"{url}/api/chat", json=CHAT, headers={"x-api-key": "wrong"},
                      timeout=30).status_code == 401  # fmt: skip
    assert httpx.post(f"{url}/api/chat", json=CHAT, headers=bearer(chat),
                      timeout=120).status_code == 200  # fmt: skip
    assert httpx.get(f"{url}/api/tags", headers=bearer(chat), timeout=30).status_code == 200
    refused = httpx.post(f"{url}/api/pull", json={"model": "x"}, headers=bearer(chat), timeout=30)
    assert refused.status_code == 403 and "'manage'" in refused.json()["error"]
    denied = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "x"},
                        headers=bearer(chat), timeout=30)  # fmt: skip
    assert denied.status_code == 403 and denied.json()["error"]["message"]  # OpenAI's shape
    admin = keys.add("ops", ("manage",))  # taken while the server runs
    metrics = httpx.get(f"{url}/metrics", headers=bearer(admin), timeout=30)
    assert metrics.status_code == 200 and 'key="app"' in metrics.text
    assert keys.remove("app")
    assert httpx.post(f"{url}/api/chat", json=CHAT, headers=bearer(chat),
                      timeout=30).status_code == 401  # fmt: skip


def test_loopback_needs_no_key_unless_asked(
    make_server: Callable[..., Running], store: Store, tmp_path: Path
) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    keys.add("app", ("chat",))
    server = make_server(store, ServerSettings(port=0, keys_file=keys.path))
    for headers in ({}, bearer("ollama"), {"x-api-key": "sk-placeholder"}):  # apps' placeholders
        r = httpx.post(f"{server.url}/api/chat", json=CHAT, headers=headers, timeout=120)
        assert r.status_code == 200


def test_a_key_over_its_limit_waits(
    make_server: Callable[..., Running], store: Store, tmp_path: Path
) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    two = keys.add("two", ("chat",), rpm=2)
    few = keys.add("few", ("chat",), tpm=5)
    server = make_server(store, ServerSettings(port=0, keys_file=keys.path, require_keys=True))
    url = server.url
    for _ in range(2):
        assert httpx.post(f"{url}/api/chat", json=CHAT, headers=bearer(two),
                          timeout=120).status_code == 200  # fmt: skip
    over = httpx.post(f"{url}/api/chat", json=CHAT, headers=bearer(two), timeout=30)
    assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
    assert "2 requests a minute" in over.json()["error"]
    first = httpx.post(f"{url}/api/chat", json=CHAT, headers=bearer(few), timeout=120)
    assert first.status_code == 200  # its prompt alone is over 5 tokens
    again = httpx.post(f"{url}/api/chat", json=CHAT, headers=bearer(few), timeout=30)
    assert again.status_code == 429 and "tokens a minute" in again.json()["error"]


def test_listening_beyond_loopback_takes_a_key_file(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    open_to_all = ServerSettings(host="0.0.0.0", keys_file=keys.path)
    with pytest.raises(ConfigError, match="localllm keys add"):
        open_to_all.check()
    keys.add("team", ("chat",))
    open_to_all.check()
    with pytest.raises(ConfigError, match="both"):
        replace(open_to_all, tls_cert=str(keys.path)).check()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a certificate")
def test_https(make_server: Callable[..., Running], store: Store, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = ServerSettings(port=0, tls_cert=str(cert), tls_key=str(key))
    server = make_server(store, settings)
    url = server.url.replace("http://", "https://")
    trusted = ssl.create_default_context(cafile=str(cert))
    r = httpx.get(f"{url}/api/version", verify=trusted, timeout=30)
    assert r.status_code == 200 and r.json()["version"]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/api/version", timeout=30)  # an unknown certificate is refused


def test_a_damaged_keys_file_closes_rather_than_opens(tmp_path: Path) -> None:
    from localllm.server.keys import KeyRing

    keys = KeyFile(tmp_path / "keys.json")
    secret = keys.add("app", ("chat",))
    ring = KeyRing(keys)
    assert ring.any() and ring.find(secret) is not None
    keys.path.write_text('{"keys": [{"name": "x"}]}')  # not what `keys add` writes
    assert ring.any() and ring.find(secret) is None  # keys still asked; none opens
    with pytest.raises(LocalLLMError, match="cannot be read as keys"):
        keys.load()
    keys.path.unlink()
    assert not ring.any()
