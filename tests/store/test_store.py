"""The blob and manifest store: atomic, deduplicated, and safe with the user's files."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from localllm.store.atomic import StoreError, atomic_write
from localllm.store.blobs import BlobStore, sha256_file
from localllm.store.manifests import Layer, Manifest, ModelNotFoundError
from localllm.store.modelfile import Message
from localllm.store.names import parse_name
from localllm.store.store import Store
from tests.factory import TINY, write_model


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    (tmp_path / "user").mkdir()
    return write_model(TINY, tmp_path / "user" / "tiny.gguf")


def _manifest(name: str, digest: str, size: int) -> Manifest:
    return Manifest(
        name=str(parse_name(name)),
        model=Layer(digest, size, "F32", "/somewhere/tiny.gguf"),
        parameters={"temperature": 0.2, "stop": ["</s>"]},
        system="Be brief.",
        messages=(Message("user", "hi"),),
        licenses=("MIT",),
        created=1.0,
    )


def test_import_leaves_the_users_file_alone_and_dedups(tmp_path: Path, model_file: Path) -> None:
    before = (model_file.stat().st_mtime_ns, model_file.stat().st_mode, sha256_file(model_file))
    blobs = BlobStore(tmp_path / "store" / "blobs")
    blob = blobs.import_file(model_file)
    assert blob.how in ("reflink", "copy")
    assert blob.digest == "sha256-" + hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert blobs.path(blob.digest).read_bytes() == model_file.read_bytes()
    assert (
        model_file.stat().st_mtime_ns,
        model_file.stat().st_mode,
        sha256_file(model_file),
    ) == before
    again = blobs.import_file(model_file)
    assert again.how == "present"  # never copied twice
    assert [p.name for p in blobs.root.iterdir()] == [blob.digest]  # no temporary files left


def test_import_checks_an_expected_digest(tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(StoreError, match="expected"):
        BlobStore(tmp_path / "b").import_file(model_file, expected="sha256-" + "0" * 64)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_manifest_round_trip_copy_and_remove(tmp_path: Path, model_file: Path) -> None:
    store = Store(tmp_path / "models")
    blob = store.blobs.import_file(model_file)
    store.put(_manifest("tiny", blob.digest, blob.size))
    assert store.get(parse_name("tiny:latest")).system == "Be brief."
    store.copy(parse_name("tiny"), parse_name("me/tiny-copy:v2"))
    assert sorted(n.short for n in store.manifests.names()) == ["me/tiny-copy:v2", "tiny"]
    # the blob stays while the copy uses it
    assert store.remove(parse_name("tiny")) == []
    assert store.blobs.has(blob.digest)
    assert store.remove(parse_name("me/tiny-copy:v2")) == [blob.digest]
    assert not store.blobs.has(blob.digest)
    assert store.list() == []


def test_unknown_model_suggests_close_names(tmp_path: Path, model_file: Path) -> None:
    store = Store(tmp_path / "models")
    blob = store.blobs.import_file(model_file)
    store.put(_manifest("llama3.2:3b", blob.digest, blob.size))
    with pytest.raises(ModelNotFoundError, match=r"did you mean llama3\.2:3b"):
        store.get(parse_name("llama3.2:3"))
    with pytest.raises(ModelNotFoundError):
        store.remove(parse_name("nothing"))


def test_manifest_for_missing_blob_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    with pytest.raises(ModelNotFoundError, match="not in the store"):
        store.put(_manifest("ghost", "sha256-" + "1" * 64, 10))
    assert store.manifests.names() == []


def test_damaged_manifest_is_a_clear_error(tmp_path: Path, model_file: Path) -> None:
    store = Store(tmp_path / "models")
    blob = store.blobs.import_file(model_file)
    store.put(_manifest("tiny", blob.digest, blob.size))
    store.manifests.path(parse_name("tiny")).write_text('{"name": ')
    with pytest.raises(StoreError, match="damaged"):
        store.get(parse_name("tiny"))


def test_full_disk_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m.json"
    atomic_write(target, b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)  # the edge of the machine: the disk fills up
    with pytest.raises(StoreError, match="disk full while writing"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_nothing_is_created_until_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    assert store.list() == [] and store.blobs.digests() == set()
    assert not (tmp_path / "models").exists()
