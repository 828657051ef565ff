"""A vision model's projector comes with it from the Hub (a hub on 127.0.0.1 through
the real `huggingface_hub` client): the best precision, verified, in the manifest."""

from __future__ import annotations

from pathlib import Path

from localllm.gguf.remote import RepoFile
from localllm.store.blobs import sha256_file
from localllm.store.projectors import pick_projector
from localllm.store.resolve import pull
from localllm.store.store import Store
from tests.factory import TINY, TINY_PROJECTOR, write_model, write_projector
from tests.fakehub import FakeHub, serve
from tests.store.test_pull_draft import choose


def test_the_best_precision_is_picked() -> None:
    names = {"model-Q4_K_M.gguf": 100, "mmproj-Q8_0.gguf": 5, "mmproj-model-f16.gguf": 9,
             "mmproj-F32.gguf": 18}  # fmt: skip
    files = [RepoFile(name, size, None) for name, size in names.items()]
    chosen = pick_projector(files)
    assert chosen is not None and chosen.path == "mmproj-model-f16.gguf"
    assert pick_projector(files[:1]) is None


def test_a_pull_brings_the_projector(tmp_path: Path) -> None:
    fake = FakeHub()
    model = write_model(TINY, tmp_path / "vis-Q8_0.gguf")
    f16 = write_projector(TINY_PROJECTOR, tmp_path / "mmproj-vis-F16.gguf", TINY)
    q8 = write_projector(TINY_PROJECTOR, tmp_path / "mmproj-vis-Q8_0.gguf", TINY, seed=1)
    for path in (model, f16, q8):
        fake.add("acme/vis-GGUF", path.name, path)
    store = Store(tmp_path / "models")
    with serve(fake):
        manifest = pull("hf.co/acme/vis-GGUF:Q8_0", store, choose, endpoint=fake.url)
        assert manifest.projector is not None
        assert manifest.projector.digest == sha256_file(f16)
        assert manifest.projector.quantization == "F16"
        assert store.blobs.has(manifest.projector.digest)
        sent = fake.bytes_sent("resolve")
        again = pull("hf.co/acme/vis-GGUF:Q8_0", store, choose, endpoint=fake.url)
        assert again.projector == manifest.projector
        assert fake.bytes_sent("resolve") == sent  # everything was in place
