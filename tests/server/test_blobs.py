"""Blob uploads and create from them, as Ollama's own client does it: `create_blob`,
then `create(files=..., adapters=...)`; a digest that does not match is refused and
leaves no file behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import ollama
import pytest

from localllm.store.names import parse_name
from localllm.store.store import Store
from tests.factory import TINY, write_lora
from tests.live_server import Running

pytestmark = pytest.mark.slow


def blob_files(store: Store) -> list[str]:
    return sorted(p.name for p in store.blobs.root.iterdir())


def test_create_from_uploaded_files(server: Running, store: Store, tiny_files: dict[str, Path],
                                    tmp_path: Path) -> None:  # fmt: skip
    client = ollama.Client(host=server.url)
    digest = "sha256:" + hashlib.sha256(tiny_files["tiny"].read_bytes()).hexdigest()
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200  # stored already
    lora = write_lora(TINY, tmp_path / "lora.gguf")
    lora_digest = client.create_blob(lora)
    assert httpx.head(f"{server.url}/api/blobs/{lora_digest}").status_code == 200
    client.create("uploaded", files={"tiny.gguf": digest}, adapters={"lora.gguf": lora_digest},
                  system="Be brief.")  # fmt: skip
    assert "Be brief." in (client.show("uploaded").modelfile or "")
    manifest = store.get(parse_name("uploaded"))
    assert manifest.model.digest == digest.replace(":", "-")  # the blob itself, not a copy
    assert [a.digest for a in manifest.adapters] == [lora_digest.replace(":", "-")]
    reply = client.generate("uploaded", "hi", options={"num_predict": 3, "seed": 1})
    assert reply.done


def test_a_wrong_digest_is_refused_and_leaves_nothing(server: Running, store: Store) -> None:
    before = blob_files(store)
    wrong = "sha256:" + "0" * 64
    answer = httpx.post(f"{server.url}/api/blobs/{wrong}", content=b"not those bytes")
    assert answer.status_code == 400 and "sha256" in answer.json()["error"]
    assert httpx.head(f"{server.url}/api/blobs/{wrong}").status_code == 404
    assert blob_files(store) == before  # no blob, no temporary file
    bad = httpx.post(f"{server.url}/api/blobs/sha256:xyz", content=b"x")
    assert bad.status_code == 400 and "not a sha256 digest" in bad.json()["error"]
    with pytest.raises(
        ollama.ResponseError, match=r"files\.x\.gguf: blob .* has not been uploaded"
    ):
        ollama.Client(host=server.url).create("nope", files={"x.gguf": wrong})
    with pytest.raises(ollama.ResponseError, match="only GGUF files"):
        data = b"{}"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
        ollama.Client(host=server.url).create("nope", files={"model.safetensors": digest})


def test_create_from_an_uploaded_model_and_projector(server: Running, store: Store,
                                                     tiny_files: dict[str, Path],
                                                     tmp_path: Path) -> None:  # fmt: skip
    from tests.factory import TINY_PROJECTOR, write_projector

    client = ollama.Client(host=server.url)
    model = "sha256:" + hashlib.sha256(tiny_files["tiny"].read_bytes()).hexdigest()
    projector = client.create_blob(write_projector(TINY_PROJECTOR, tmp_path / "p.gguf", TINY))
    client.create("seeing", files={"model.gguf": model, "mmproj.gguf": projector})
    manifest = store.get(parse_name("seeing"))
    assert manifest.projector is not None
    assert manifest.projector.digest == projector.replace(":", "-")
    assert "vision" in (client.show("seeing").capabilities or [])
