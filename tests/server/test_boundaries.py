"""What the API reaches and what a client can hold, tried as an attacker would on a
real server: no server-local file through create or pull, no fetch from an address
that is not a hub (nor a redirect to one), bodies bounded before they are read,
half-sent requests and idle connections closed, a connection limit, prompts far over
the context refused before the worker tokenizes them."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from localllm.server.settings import ServerSettings
from localllm.store.egress import Egress
from localllm.store.names import parse_name
from localllm.store.store import Store
from tests.factory import TINY, write_model
from tests.fakehub import FakeHub, serve
from tests.live_server import Running, start_server
from tests.server.test_robustness import LONG, _slow_store, wait_for

pytestmark = pytest.mark.slow
REFUSED = "the server does not read files from its own disk through the API"


@pytest.fixture
def internal() -> Iterator[list[str]]:
    """A service on loopback that must never be reached: the paths it was asked for."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hits.append(f"http://127.0.0.1:{server.server_address[1]}")  # hits[0]: its address
    yield hits
    server.shutdown()
    server.server_close()


def test_no_server_local_file_is_read_through_the_api(
    make_server: Callable[..., Running], store: Store, tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    server = make_server(store)
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hash:19000::::::\n")
    tries: list[tuple[str, dict[str, object]]] = [
        ("/api/create", {"model": "x", "from": str(secret)}),
        ("/api/create", {"model": "x", "from": str(tmp_path / "missing")}),
        ("/api/create", {"model": "x", "from": str(tiny_files["tiny"])}),
        ("/api/create", {"model": "x", "from": "../../etc/passwd.gguf"}),
        ("/api/create", {"model": "x", "modelfile": f"FROM {secret}"}),
        ("/api/create", {"model": "x", "modelfile": f"FROM tiny\nADAPTER {secret}"}),
        ("/api/create", {"model": "x", "modelfile": f"FROM tiny\nFROM {secret}"}),
        ("/api/pull", {"model": str(secret), "stream": False}),
        ("/api/pull", {"model": str(tmp_path / "missing.gguf"), "stream": False}),
        ("/api/pull", {"model": "~/.ssh/id_rsa", "stream": False}),
    ]
    answers = [httpx.post(server.url + path, json={**body, "stream": False}, timeout=30)
               for path, body in tries]  # fmt: skip
    for (path, body), answer in zip(tries, answers, strict=True):
        assert answer.status_code == 403, (path, body, answer.text)
        assert REFUSED in answer.json()["error"]
        assert "hash:19000" not in answer.text and "$6$" not in answer.text
    # an existing file and a missing one cannot be told apart
    assert answers[0].json()["error"].replace(str(secret), "P") == answers[1].json()[
        "error"
    ].replace(str(tmp_path / "missing"), "P")
    assert not {"x"} & {n.model for n in store.manifests.names()}


def test_an_operator_may_allow_a_folder(
    make_server: Callable[..., Running], store: Store, tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    allowed = tmp_path / "models-here"
    allowed.mkdir()
    (allowed / "tiny.gguf").write_bytes(tiny_files["tiny"].read_bytes())
    (allowed / "escape.gguf").symlink_to(tiny_files["other"])  # a link out of it
    settings = ServerSettings(port=0, allow_files=(str(allowed),))
    server = make_server(store, settings)
    body = {"model": "local", "from": str(allowed / "tiny.gguf"), "stream": False}
    made = httpx.post(f"{server.url}/api/create", timeout=60, json=body)
    assert made.status_code == 200, made.text
    assert store.get(parse_name("local")).model.source == str((allowed / "tiny.gguf").resolve())
    for path in (allowed / "escape.gguf", tiny_files["other"]):
        body = {"model": "y", "from": str(path), "stream": False}
        refused = httpx.post(f"{server.url}/api/create", json=body)
        assert refused.status_code == 403 and REFUSED in refused.json()["error"]


def test_pull_fetches_only_from_the_hub(
    store: Store, tmp_path: Path, tiny_files: dict[str, Path], internal: list[str]
) -> None:
    address = internal[0]
    with serve(FakeHub()) as hub:
        fresh = write_model(TINY, tmp_path / "fresh.gguf", seed=5)  # not in the store yet
        hub.add("acme/m-GGUF", "m-Q8_0.gguf", fresh)
        hub.redirects["m-Q8_0.gguf"] = f"{address}/latest/meta-data"
        uninstall = Egress.for_endpoint(hub.url).install()
        running, thread = start_server(store, tmp_path / "logs", hub_endpoint=hub.url)
        try:
            direct = httpx.post(f"{running.url}/api/pull", timeout=30,
                                json={"model": f"{address}/m.gguf", "stream": False})  # fmt: skip
            assert direct.status_code == 403
            assert "fetches only from its hubs" in direct.json()["error"]
            body = {"model": "hf.co/acme/m-GGUF:Q8_0", "stream": False}
            via_hub = httpx.post(f"{running.url}/api/pull", timeout=60, json=body)
            assert via_hub.status_code == 403, via_hub.text
            assert "not a public address" in via_hub.json()["error"]
            assert "secret" not in via_hub.text
        finally:
            uninstall()
            running.server.should_exit = True
            thread.join(timeout=20)
    assert internal[1:] == []  # the internal service was never asked anything


def _send_until_answered(server: Running, path: str, headers: str, parts: Iterator[bytes]) -> bytes:
    """A request sent part by part on a raw socket, stopping once the server answers (as
    it does before reading a body over the limit); the answer. (An HTTP client would
    keep writing into the closed connection and report the failed write instead.)"""
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\n{headers}\r\n".encode())
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:
                break  # the server answered and closed: read its answer
            sock.setblocking(False)
            try:
                early = sock.recv(65536)
            except BlockingIOError:
                early = b""
            sock.settimeout(60)
            if early:
                return _rest(sock, early)
        return _rest(sock)


def _rest(sock: socket.socket, data: bytes = b"") -> bytes:
    """`data` and what follows it, until the answer's headers and as many bytes of body
    as its Content-Length says (or the connection ends)."""
    with contextlib.suppress(OSError):
        while True:
            head, _, body = data.partition(b"\r\n\r\n")
            if _:
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                if len(body) >= length:
                    return data
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    return data


def test_bodies_over_the_limit_get_413_before_they_are_read(
    make_server: Callable[..., Running], store: Store
) -> None:
    server = make_server(store, ServerSettings(port=0, max_body_bytes=1 << 20))
    size = 2 << 20

    def body(chunked: bool) -> Iterator[bytes]:
        for _ in range(size // 65536):
            part = b"x" * 65536
            yield f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part

    for path, shape in (("/api/generate", b'{"error": "the request body is'),
                        ("/v1/chat/completions", b'"type": "invalid_request_error"'),
                        ("/v1/messages", b'"type": "request_too_large"')):  # fmt: skip
        sized = _send_until_answered(server, path, f"Content-Length: {size}\r\n", body(False))
        assert sized.startswith(b"HTTP/1.1 413") and b"limit of 1 MiB" in sized, sized[:300]
        assert shape in sized.replace(b'":"', b'": "').replace(b'","', b'", "')
    chunked = _send_until_answered(server, "/api/generate", "Transfer-Encoding: chunked\r\n",
                                   body(True))  # fmt: skip
    assert chunked.startswith(b"HTTP/1.1 413") and b"limit of 1 MiB" in chunked, chunked[:300]
    assert b"connection: close" in chunked.lower()  # the rest of the body is not read
    data = b"z" * size  # a blob upload is exempt: streamed to disk
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
    ok = httpx.post(f"{server.url}/api/generate", json={"model": "tiny", "prompt": "hi",
                    "stream": False, "options": {"num_predict": 2}}, timeout=60)  # fmt: skip
    assert ok.status_code == 200


def _closed(sock: socket.socket, within_s: float = 60) -> bool:
    """Whether the server closes `sock` (reads until EOF) within `within_s`."""
    sock.settimeout(within_s)
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except (TimeoutError, ConnectionResetError):
        return False
    return False


def test_half_sent_requests_and_idle_connections_are_closed(
    make_server: Callable[..., Running], store: Store
) -> None:
    settings = ServerSettings(port=0, request_timeout_s=1, idle_timeout_s=1)
    server = make_server(store, settings)
    host, port = server.host.split(":")
    loris = socket.create_connection((host, int(port)))
    loris.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
    silent = socket.create_connection((host, int(port)))
    idle = socket.create_connection((host, int(port)))
    idle.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert b"200 OK" in idle.recv(65536)
    assert _closed(loris) and _closed(silent) and _closed(idle)
    assert httpx.get(f"{server.url}/api/version").status_code == 200  # the server goes on


def test_beyond_the_connection_limit_new_connections_get_503(
    make_server: Callable[..., Running], store: Store
) -> None:
    server = make_server(store, ServerSettings(port=0, max_connections=4))
    host, port = server.host.split(":")
    held = [socket.create_connection((host, int(port))) for _ in range(4)]
    extra = socket.create_connection((host, int(port)))
    extra.settimeout(30)
    reply = extra.recv(65536)
    assert reply.startswith(b"HTTP/1.1 503") and b"too many open connections" in reply
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the held ones' slots free as they close
        try:
            if httpx.get(f"{server.url}/api/version").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/api/version").status_code == 200


def test_a_huge_prompt_is_refused_before_the_worker_reads_it(server: Running) -> None:
    prompt = "word " * (4 << 20)  # 20 MiB against a 1,024-token context
    answer = httpx.post(f"{server.url}/api/generate", timeout=60,
                        json={"model": "tiny", "prompt": prompt, "stream": False})  # fmt: skip
    assert answer.status_code == 400
    assert "far more than the model's context of 1,024 tokens" in answer.json()["error"]
    cut = httpx.post(f"{server.url}/v1/chat/completions", timeout=60, json={
        "model": "tiny", "max_tokens": 2,
        "messages": [{"role": "user", "content": prompt}]})  # fmt: skip
    assert cut.status_code == 400 and "far more" in cut.json()["error"]["message"]


def test_empty_strings_have_no_embedding(server: Running) -> None:
    for path, body in (("/api/embed", {"model": "tiny", "input": ["a", ""]}),
                       ("/v1/embeddings", {"model": "tiny", "input": ["a", ""]})):  # fmt: skip
        answer = httpx.post(server.url + path, json=body, timeout=30)
        assert answer.status_code == 400
        assert "input.1: an empty string has no embedding" in answer.text


def test_every_request_is_one_access_log_line(
    server: Running, store: Store, tiny_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="localllm.access")
    body = {"model": "tiny", "prompt": "hi", "stream": False,
            "options": {"num_predict": 3, "seed": 7}}  # fmt: skip
    answer = httpx.post(f"{server.url}/api/generate", json=body, timeout=60).json()
    assert httpx.get(f"{server.url}/api/nothing").status_code == 404
    forged = httpx.get(f"{server.url}/api/x%0A127.0.0.1:1%20%22GET%20/api/ps%22%20200")
    assert forged.status_code == 404
    _slow_store(store, tiny_files)  # 8,000 tokens take far longer than leaving does
    with httpx.stream("POST", f"{server.url}/api/generate", json=LONG, timeout=60) as r:
        next(r.iter_lines())  # then leave
    assert wait_for(lambda: any("gone" in r.getMessage() for r in caplog.records), timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.name == "localllm.access"]
    generated = next(line for line in lines if '"POST /api/generate" 200' in line)
    assert generated.startswith("127.0.0.1:") and "model=tiny prompt=" in generated
    assert generated.endswith(f"prompt={answer['prompt_eval_count']} eval={answer['eval_count']}")
    assert any('"GET /api/nothing" 404' in line for line in lines)
    assert all("\n" not in line for line in lines)  # a path cannot forge a second line
    assert any('/api/x\\n127.0.0.1:1 \\"GET /api/ps\\"' in line for line in lines)
    (gone,) = [line for line in lines if "gone" in line]
    assert '"POST /api/generate" 200' in gone and gone.endswith("(client gone before the end)")
    assert not [r for r in caplog.records if r.exc_info]  # a line, not a traceback


def test_a_blob_that_changed_size_is_not_loaded(server: Running, store: Store) -> None:
    blob = store.blobs.path(store.get(parse_name("other")).model.digest)
    with blob.open("ab") as f:
        f.write(b"appended")
    body = {"model": "other", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    answer = httpx.post(f"{server.url}/api/generate", json=body, timeout=60)
    assert answer.status_code == 409
    assert "its manifest says" in answer.json()["error"] and "verify other --repair" in answer.text
    assert "other:latest" not in server.scheduler.slots
