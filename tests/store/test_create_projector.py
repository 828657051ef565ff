"""create with a second FROM: the model's vision projector, kept as its own layer and
checked against the model (Ollama's convention for LLaVA-style imports)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localllm.planner.plan import Plan
from localllm.store.candidates import Source
from localllm.store.create import create
from localllm.store.modelfile import parse_modelfile
from localllm.store.names import parse_name
from localllm.store.projectors import check_projector
from localllm.store.resolve import CreateError
from localllm.store.store import Store
from tests.factory import TINY, TINY_PROJECTOR, ModelSpec, write_model, write_projector


def _no_planning(sources: list[Source]) -> Plan:
    raise AssertionError("local imports need no plan")


def test_a_second_from_is_the_projector(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    write_model(TINY, tmp_path / "tiny.gguf")
    write_projector(TINY_PROJECTOR, tmp_path / "mmproj-tiny-f16.gguf", TINY)
    mf = parse_modelfile("FROM ./tiny.gguf\nFROM ./mmproj-tiny-f16.gguf\n")
    manifest = create(parse_name("eyes"), mf, store, tmp_path, _no_planning)
    assert manifest.projector is not None and store.blobs.has(manifest.projector.digest)
    assert manifest.projector.quantization == "F16"
    weights = store.blobs.path(manifest.model.digest)
    projector = store.blobs.path(manifest.projector.digest)
    text = manifest.to_modelfile(weights, projector=projector).to_text()
    assert text.startswith(f"FROM {weights}\nFROM {projector}\n")
    # a model made FROM it keeps the projector
    child = create(parse_name("eyes2"), parse_modelfile("FROM eyes\nPARAMETER seed 1\n"),
                   store, tmp_path, _no_planning)  # fmt: skip
    assert child.projector == manifest.projector


def test_a_projector_of_another_model_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    write_model(TINY, tmp_path / "tiny.gguf")
    write_projector(TINY_PROJECTOR, tmp_path / "mmproj.gguf", ModelSpec(n_embd=128))
    mf = parse_modelfile("FROM ./tiny.gguf\nFROM ./mmproj.gguf\n")
    with pytest.raises(CreateError, match="128-wide embeddings but the model takes 64"):
        create(parse_name("eyes"), mf, store, tmp_path, _no_planning)
    assert store.list() == []


def test_a_second_model_is_not_a_projector(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    write_model(TINY, tmp_path / "tiny.gguf")
    write_model(TINY, tmp_path / "other.gguf", seed=1)
    mf = parse_modelfile("FROM ./tiny.gguf\nFROM ./other.gguf\n")
    with pytest.raises(CreateError, match="not a vision projector"):
        create(parse_name("eyes"), mf, store, tmp_path, _no_planning)
    missing = parse_modelfile("FROM ./tiny.gguf\nFROM ./nowhere.gguf\n")
    with pytest.raises(CreateError, match=r"vision projector.*no such file"):
        create(parse_name("eyes"), missing, store, tmp_path, _no_planning)


def test_projector_types_llama_cpp_cannot_read_images_with() -> None:
    base = {"general.architecture": "clip", "clip.has_vision_encoder": True}
    assert check_projector({**base, "clip.projector_type": "gemma3"}, {}, 2560, "p") == "gemma3"
    with pytest.raises(ValueError, match="'ultravox' is not one"):
        check_projector({**base, "clip.projector_type": "ultravox"}, {}, 64, "p")
    with pytest.raises(ValueError, match="no vision encoder"):
        check_projector({"general.architecture": "clip"}, {}, 64, "p")
    shapes = {"mm.input_projection.weight": (2560, 1152)}  # Gemma 3 4B's, in ggml order
    with pytest.raises(ValueError, match="2560-wide"):
        check_projector({**base, "clip.projector_type": "gemma3"}, shapes, 3840, "p")
