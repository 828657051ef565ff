"""The shipped catalogue: every entry parses and resolves to a Hugging Face repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from localllm.store.catalogue import Catalogue
from localllm.store.names import parse_name
from localllm.store.refs import HubRef, RefError, parse_ref

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = [
    "llama3.2:1b", "llama3.2:3b", "qwen2.5:7b", "gemma3:4b", "phi4-mini", "mistral:7b",
    "smollm2:1.7b", "deepseek-r1:8b", "qwen3:30b-a3b", "gpt-oss:20b", "nomic-embed-text",
    "qwen3-embedding:0.6b", "qwen3-reranker:0.6b",
]  # fmt: skip


def test_every_entry_resolves_to_a_repository() -> None:
    cat = Catalogue()
    names = cat.names()
    models = {(n.model, cat.resolve(n).repo) for n in names}  # type: ignore[union-attr]
    assert len(models) >= 15 and len({n.model for n in names}) >= 15
    for name in names:
        resolved = cat.resolve(name)
        assert resolved is not None, name
        assert resolved.repo.count("/") == 1 and resolved.repo.endswith("GGUF"), resolved.repo
        assert resolved.modelfile.licenses, f"{name} has no license"


def test_drafts_are_small_siblings_in_the_catalogue() -> None:
    cat = Catalogue()
    drafts = {}
    for name in cat.names():
        resolved = cat.resolve(name)
        assert resolved is not None
        if resolved.modelfile.draft:
            sibling = cat.resolve(parse_name(resolved.modelfile.draft))
            assert sibling is not None, f"{name}: DRAFT {resolved.modelfile.draft} is unknown"
            assert sibling.modelfile.draft is None  # a draft has no draft of its own
            drafts[name.short] = resolved.modelfile.draft
    assert drafts["qwen2.5:7b"] == "qwen2.5:0.5b" and drafts["llama3.1:8b"] == "llama3.2:1b"


@pytest.mark.parametrize("name", REQUIRED)
def test_required_models_are_there(name: str) -> None:
    assert Catalogue().resolve(parse_name(name)) is not None


def test_latest_and_quantization_tags() -> None:
    cat = Catalogue()
    latest = cat.resolve(parse_name("llama3.2"))
    three = cat.resolve(parse_name("llama3.2:3b"))
    assert latest is not None and three is not None and latest.repo == three.repo
    q8 = cat.resolve(parse_name("llama3.2:3b-q8_0"))
    assert q8 is not None and q8.quant == "Q8_0" and q8.repo == three.repo
    qwen = cat.resolve(parse_name("qwen2.5:0.5b"))
    assert qwen is not None and qwen.modelfile.parameters["top_k"] == 20
    assert cat.resolve(parse_name("llama3.2:70b")) is None


def test_refs_use_the_catalogue_and_suggest() -> None:
    assert parse_ref("llama3.2:1b") == HubRef("bartowski/Llama-3.2-1B-Instruct-GGUF")
    assert parse_ref("gemma3:4b-q4_k_m") == HubRef("unsloth/gemma-3-4b-it-GGUF", "Q4_K_M")
    with pytest.raises(RefError, match=r"Did you mean llama3\.2"):
        parse_ref("lama3.2")


@pytest.mark.slow
def test_the_catalogue_ships_in_the_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("localllm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "localllm/modelfiles/llama3.2/3b.Modelfile" in names
    assert sum(n.endswith(".Modelfile") for n in names) == len(Catalogue().names())
