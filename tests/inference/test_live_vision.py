"""Images through the server with the official clients (ollama, openai, anthropic): a
model created with a second FROM (its generated projector) reads them; bad images and
models without a projector get a 400 that says why, and cost nothing else."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import numpy as np
import ollama
import openai
import pytest
from PIL import Image as PILImage

from localllm.store.store import Store
from tests.factory import TINY, TINY_PROJECTOR, write_projector
from tests.live_server import Running, add_model

N = TINY_PROJECTOR.image_tokens


def png(seed: int, width: int = 48, height: int = 40) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def claims(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb
    when large: the size is read before any pixel)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.fixture
def vision_server(
    make_server: Callable[..., Running], store: Store, tiny_files: dict[str, Path]
) -> Running:
    projector = write_projector(TINY_PROJECTOR, tiny_files["tiny"].parent / "mmproj.gguf", TINY)
    add_model(store, "eyes", tiny_files["tiny"], f"FROM {projector}\nPARAMETER num_ctx 1024\n")
    return make_server(store)


def test_ollama_chat_and_generate_read_an_image(vision_server: Running) -> None:
    client = ollama.Client(host=vision_server.url)
    options = {"temperature": 0, "num_predict": 8}
    plain = client.chat("eyes", [{"role": "user", "content": "What is it?"}], options=options)
    seen = client.chat(
        "eyes", [{"role": "user", "content": "What is it?", "images": [png(1)]}], options=options
    )
    assert seen.eval_count and seen.message.content is not None
    # the image's tokens, and the text around it tokenized in two pieces
    assert (seen.prompt_eval_count or 0) >= (plain.prompt_eval_count or 0) + N
    generated = client.generate("eyes", "What is it?", images=[png(1)], options=options)
    assert generated.eval_count and generated.prompt_eval_count
    assert "vision" in (client.show("eyes").capabilities or [])


def test_openai_image_url_parts_and_the_cache_of_a_follow_up(vision_server: Running) -> None:
    client = openai.OpenAI(base_url=f"{vision_server.url}/v1", api_key="x", max_retries=0)
    picture: Any = {"type": "image_url", "image_url": {"url": data_url(png(2))}}
    first: Any = [{"role": "user", "content": [{"type": "text", "text": "Look:"}, picture]}]
    answer = client.chat.completions.create(
        model="eyes",
        messages=first,
        max_tokens=6,
        temperature=0,
    )
    assert answer.usage is not None and answer.usage.completion_tokens
    reply = answer.choices[0].message.content or ""
    follow_up: Any = [*first, {"role": "assistant", "content": reply},
                 {"role": "user", "content": "And the colours?"}]  # fmt: skip
    again = client.chat.completions.create(
        model="eyes",
        messages=follow_up,
        max_tokens=6,
        temperature=0,
    )
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert (again.usage.prompt_tokens_details.cached_tokens or 0) > N  # the image stayed cached


def test_remote_image_urls_are_refused_unless_allowed(vision_server: Running) -> None:
    client = openai.OpenAI(base_url=f"{vision_server.url}/v1", api_key="x", max_retries=0)
    remote: Any = {"type": "image_url", "image_url": {"url": "http://169.254.169.254/cat.png"}}
    with pytest.raises(openai.BadRequestError, match="remote image URLs are off"):
        client.chat.completions.create(
            model="eyes",
            messages=[{"role": "user", "content": [remote]}],
        )


def test_anthropic_image_blocks(vision_server: Running) -> None:
    client = anthropic.Anthropic(base_url=vision_server.url, api_key="x", max_retries=0)
    source = {"type": "base64", "media_type": "image/png",
              "data": base64.b64encode(png(3)).decode()}  # fmt: skip
    content: Any = [{"type": "image", "source": source}, {"type": "text", "text": "What is it?"}]
    message = client.messages.create(
        model="eyes",
        max_tokens=6,
        messages=[{"role": "user", "content": content}],
    )
    assert message.usage.input_tokens > N and message.stop_reason is not None
    counted = client.messages.count_tokens(
        model="eyes",
        messages=[{"role": "user", "content": content}],
    )
    assert counted.input_tokens == message.usage.input_tokens


BAD = [
    ("not base64", "@@@", "not base64"),
    ("not an image", base64.b64encode(b"hello, world" * 10).decode(), "not an image"),
    ("truncated", base64.b64encode(png(4)[:120]).decode(), "could not be decoded"),
    ("bomb", base64.b64encode(claims(100_000, 100_000)).decode(), "megapixels"),
    ("absurd", base64.b64encode(claims(1, 20_000)).decode(), "at most 16384 a side"),
]


@pytest.mark.parametrize(("label", "image", "says"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_image_is_a_400_naming_it(
    vision_server: Running, label: str, image: str, says: str
) -> None:
    message = {"role": "user", "content": "Hi", "images": [png_b64(5), image]}
    body = {"model": "eyes", "stream": False, "messages": [message]}
    r = httpx.post(f"{vision_server.url}/api/chat", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert "messages.0.images.1" in r.json()["error"] and says in r.json()["error"]
    ok = httpx.post(f"{vision_server.url}/api/generate", timeout=60, json={
        "model": "eyes", "prompt": "Hi", "images": [png_b64(5)], "stream": False,
        "options": {"num_predict": 2, "seed": 1}})  # fmt: skip
    assert ok.status_code == 200 and ok.json()["done"] is True  # nothing else was lost


def png_b64(seed: int) -> str:
    return base64.b64encode(png(seed)).decode()


def test_a_model_without_a_projector_refuses_images(vision_server: Running) -> None:
    for path, body in (
        ("/api/generate", {"model": "tiny", "prompt": "Hi", "images": [png_b64(1)]}),
        ("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "Hi",
                                                       "images": [png_b64(1)]}]}),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(png(1))}}]}]}),
        ("/v1/messages", {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user",
            "content": [{"type": "image", "source": {"type": "base64",
                         "media_type": "image/png", "data": png_b64(1)}}]}]}),
    ):  # fmt: skip
        r = httpx.post(f"{vision_server.url}{path}", json=body, timeout=60)
        assert r.status_code == 400, (path, r.text)
        assert "no vision projector" in r.text, path
