"""create: FROM a stored model with a LoRA adapter; adapters are checked to be adapters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from localllm.planner.plan import Plan
from localllm.store.candidates import Source
from localllm.store.create import create
from localllm.store.drafts import DraftError
from localllm.store.modelfile import parse_modelfile
from localllm.store.names import parse_name
from localllm.store.resolve import CreateError, pull
from localllm.store.store import Store
from tests.factory import TINY, write_lora, write_model


def _no_planning(sources: list[Source]) -> Plan:
    raise AssertionError("local imports need no plan")


def test_adapter_layer(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    pull(str(write_model(TINY, tmp_path / "base.gguf")), store, _no_planning)
    write_lora(TINY, tmp_path / "style.gguf")
    mf = parse_modelfile("FROM base\nADAPTER ./style.gguf\nPARAMETER seed 7\n")
    manifest = create(parse_name("styled"), mf, store, tmp_path, _no_planning)
    (adapter,) = manifest.adapters
    assert store.blobs.has(adapter.digest) and adapter.quantization == "adapter"
    assert manifest.model == store.get(parse_name("base")).model  # the same weights blob
    assert manifest.parameters["seed"] == 7
    # removing the base keeps the weights: `styled` still uses them
    store.remove(parse_name("base"))
    assert store.blobs.has(manifest.model.digest)


def test_a_model_is_not_an_adapter(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    write_model(TINY, tmp_path / "base.gguf")
    mf = parse_modelfile("FROM ./base.gguf\nADAPTER ./base.gguf\n")
    with pytest.raises(CreateError, match="not a LoRA adapter"):
        create(parse_name("x"), mf, store, tmp_path, _no_planning)
    with pytest.raises(CreateError, match="no such file"):
        create(
            parse_name("y"), parse_modelfile("FROM ./missing.gguf\n"), store, tmp_path, _no_planning
        )


def test_a_draft_is_kept_as_a_layer_of_its_own(tmp_path: Path) -> None:
    """DRAFT names a stored model (or a GGUF): its weights are recorded in the manifest,
    so removing the draft's name leaves the model its draft."""
    store = Store(tmp_path / "models")
    pull(str(write_model(TINY, tmp_path / "base.gguf")), store, _no_planning)
    pull(str(write_model(replace(TINY, n_layer=1), tmp_path / "small.gguf")), store, _no_planning)
    mf = parse_modelfile("FROM base\nDRAFT small\nPARAMETER draft_max 8\n")
    manifest = create(parse_name("fast"), mf, store, tmp_path, _no_planning)
    assert manifest.draft == store.get(parse_name("small")).model
    assert manifest.parameters["draft_max"] == 8
    store.remove(parse_name("small"))
    assert store.blobs.has(manifest.draft.digest)
    assert store.get(parse_name("fast")).draft == manifest.draft
    by_path = create(
        parse_name("fast2"), parse_modelfile("FROM base\nDRAFT ./small.gguf\n"), store,
        tmp_path, _no_planning,
    )  # fmt: skip
    assert by_path.draft == manifest.draft


def test_a_draft_of_another_vocabulary_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    write_model(TINY, tmp_path / "base.gguf")
    write_model(replace(TINY, n_vocab=1024), tmp_path / "big.gguf")
    mf = parse_modelfile("FROM ./base.gguf\nDRAFT ./big.gguf\n")
    with pytest.raises(DraftError, match="1024 tokens, the model's 384"):
        create(parse_name("x"), mf, store, tmp_path, _no_planning)
    with pytest.raises(CreateError, match=r"DRAFT \./nope\.gguf: no such file"):
        create(parse_name("x"), parse_modelfile("FROM ./base.gguf\nDRAFT ./nope.gguf\n"),
               store, tmp_path, _no_planning)  # fmt: skip
    assert not store.list()
