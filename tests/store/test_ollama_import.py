"""`localllm import ollama`: a synthetic Ollama folder's models in the store, with their
template, system, parameters, messages, adapter, projector and license, in bytes of the
store's own; damaged or crafted manifests reported and the rest imported."""

from __future__ import annotations

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


def test_the_store_gets_bytes_of_its_own(folder: OllamaFolder, tmp_path: Path) -> None:
    """Cloned or copied, never hard-linked: Ollama rewriting its blob in place later does
    not change the store's blob under its digest."""
    store = Store(tmp_path / "store")
    report = import_ollama(folder.root, store)
    assert {m.how for m in report.imported} <= {"reflink", "copy", "present"}
    tiny = store.get(parse_name("tiny"))
    theirs = folder.root / "blobs" / tiny.model.digest
    ours = store.blobs.path(tiny.model.digest)
    before = ours.read_bytes()
    assert before == theirs.read_bytes() and ours.stat().st_ino != theirs.stat().st_ino
    with theirs.open("r+b") as f:  # in place (same inode): weights, near the end
        f.seek(-64, 2)
        f.write(b"\xff" * 32)
    assert ours.read_bytes() == before
    again = import_ollama(folder.root, store)
    assert "tiny" not in {m.name for m in again.imported}  # its blob no longer matches
    assert any(p.startswith("tiny:latest") and "does not match its digest" in p
               for p in again.problems)  # fmt: skip


def test_a_crafted_manifest_reads_nothing_outside_ollamas_blobs(
    folder: OllamaFolder, tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    """Digests are names only once they have the shape of one, inside blobs/, with the
    bytes they name: no system file is copied into a model's license or template."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    model = ("model", *folder.file_blob(tiny_files["tiny"]))
    escape = "sha256:../../../../" + str(secret).lstrip("/")
    folder.manifest("library/escape:latest", [model, ("license", escape, 10)])
    link = "sha256:" + "a" * 64
    (folder.root / "blobs" / link.replace(":", "-")).symlink_to(secret)
    folder.manifest("library/linked:latest", [model, ("template", link, 10)])
    forged = folder.text("system", "Be kind.")
    (folder.root / "blobs" / forged[1].replace(":", "-")).write_text("Be evil.")
    folder.manifest("library/forged:latest", [model, forged])
    store = Store(tmp_path / "store")
    report = import_ollama(folder.root, store)
    imported = {m.name for m in report.imported}
    assert {"tiny", "someone/tiny:v2"} <= imported
    assert not imported & {"escape", "linked", "forged"}
    problems = "\n".join(report.problems)
    assert "escape:latest" in problems and "is not a sha256 digest" in problems
    assert "linked:latest" in problems and "lies outside" in problems
    assert "forged:latest" in problems and "system layer's blob" in problems
    assert "secret" not in problems and "evil" not in problems
    for manifest in store.list():
        assert "secret" not in "".join(manifest.licenses) + (manifest.template or "")


def test_ollamas_folder_is_found_as_ollama_finds_it(tmp_path: Path) -> None:
    assert ollama_models_dir({"OLLAMA_MODELS": "/data/m"}, tmp_path) == Path("/data/m")
    assert ollama_models_dir({}, tmp_path, "darwin") == tmp_path / ".ollama" / "models"
