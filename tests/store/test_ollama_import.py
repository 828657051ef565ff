"""`localllm import ollama`: a synthetic Ollama folder's models in the store, with their
template, system, parameters, messages, adapter, projector and license, linked not
copied; damaged manifests reported and the rest imported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localllm.store.names import parse_name
from localllm.store.ollama_import import import_ollama, ollama_models_dir
from localllm.store.store import Store
from tests.factory import TINY, write_lora
from tests.ollama_folder import TEMPLATE, OllamaFolder


@pytest.fixture
def folder(tmp_path: Path, tiny_files: dict[str, Path]) -> OllamaFolder:
    ollama = OllamaFolder(tmp_path / "ollama" / "models")
    model = ("model", *ollama.file_blob(tiny_files["tiny"]))
    adapter = ("adapter", *ollama.file_blob(write_lora(TINY, tmp_path / "lora.gguf")))
    projector = ("projector", *ollama.file_blob(tiny_files["other"]))
    ollama.manifest("library/tiny:latest", [
        model, ollama.text("template", TEMPLATE), ollama.text("system", "Be brief."),
        ollama.text("params", {"temperature": 0.2, "stop": ["<|im_end|>"], "bogus": 1}),
        ollama.text("messages", [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "hello"}]),
        ollama.text("license", "MIT"), adapter, projector,
    ])  # fmt: skip
    ollama.manifest("someone/tiny:v2", [model])
    ollama.manifest("owner/tiny-gguf:q4_k_m", [model], registry="hf.co")
    broken = ollama.root / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    ollama.manifest("library/gone:latest", [("model", "sha256:" + "1" * 64, 10)])
    ollama.manifest("library/text:latest", [ollama.text("model", "not a gguf")])
    return ollama


def test_every_model_comes_over_and_damaged_ones_are_reported(
    folder: OllamaFolder, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    report = import_ollama(folder.root, store)
    names = sorted(m.name for m in report.imported)
    assert names == ["owner/tiny-gguf:q4_k_m", "someone/tiny:v2", "tiny"]
    assert sorted(m.name for m in store.list()) == [
        "owner/tiny-gguf:q4_k_m", "someone/tiny:v2", "tiny:latest"]  # fmt: skip
    problems = sorted(report.problems)
    assert len(problems) == 3
    assert problems[0].startswith("broken:latest") and "Expecting property name" in problems[0]
    assert problems[1].startswith("gone:latest") and "is missing" in problems[1]
    assert problems[2].startswith("text:latest") and "GGUF" in problems[2]
    tiny = store.get(parse_name("tiny"))
    assert tiny.template == TEMPLATE and tiny.system == "Be brief."
    assert tiny.parameters == {"temperature": 0.2, "stop": ["<|im_end|>"]}
    assert [(m.role, m.content) for m in tiny.messages] == [("user", "hi"), ("assistant", "hello")]
    assert tiny.licenses == ("MIT",) and len(tiny.adapters) == 1 and tiny.projector is not None
    (imported,) = [m for m in report.imported if m.name == "tiny"]
    assert any("bogus" in note for note in imported.notes)


def test_no_byte_is_copied_where_links_work(folder: OllamaFolder, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    report = import_ollama(folder.root, store)
    probe = tmp_path / "store" / "probe"
    try:
        os.link(next((folder.root / "blobs").iterdir()), probe)
    except OSError:
        pytest.skip("this file system has no hard links")
    assert {m.how for m in report.imported} <= {"reflink", "hardlink", "present"}
    tiny = store.get(parse_name("tiny"))
    theirs = folder.root / "blobs" / tiny.model.digest
    ours = store.blobs.path(tiny.model.digest)
    assert ours.read_bytes() == theirs.read_bytes()
    if report.imported[0].how == "hardlink":
        assert ours.stat().st_ino == theirs.stat().st_ino
    again = import_ollama(folder.root, store)  # a second import finds everything present
    assert {m.how for m in again.imported} == {"present"}


def test_ollamas_folder_is_found_as_ollama_finds_it(tmp_path: Path) -> None:
    assert ollama_models_dir({"OLLAMA_MODELS": "/data/m"}, tmp_path) == Path("/data/m")
    assert ollama_models_dir({}, tmp_path, "darwin") == tmp_path / ".ollama" / "models"
