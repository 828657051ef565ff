"""The store holds exactly what its digests say: its own bytes (never the user's file
under a digest), files used in place checked at load, `verify` and `--repair`, and
`prune` of what crashes and removals left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localllm.store.blobs import sha256_file
from localllm.store.create import create
from localllm.store.integrity import prune, repair, verify
from localllm.store.modelfile import parse_modelfile
from localllm.store.names import parse_name
from localllm.store.store import BlobChanged, Store
from tests.factory import TINY, write_model


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    (tmp_path / "user").mkdir()
    return write_model(TINY, tmp_path / "user" / "tiny.gguf")


def _create(store: Store, name: str, path: Path, in_place: bool = False) -> None:
    def no_plan(sources: object) -> object:
        raise AssertionError("a local file needs no plan")

    modelfile = parse_modelfile(f"FROM {path}\n")
    create(parse_name(name), modelfile, store, path.parent, no_plan, in_place=in_place)  # type: ignore[arg-type]


def _scribble(path: Path) -> None:
    """Rewrite weights in place (same inode, same size), as a tool might."""
    with path.open("r+b") as f:
        f.seek(-64, os.SEEK_END)
        f.write(b"\x5a" * 32)


def test_rewriting_the_users_file_never_changes_the_blob(tmp_path: Path, user_file: Path) -> None:
    store = Store(tmp_path / "models")
    _create(store, "tiny", user_file)
    manifest = store.get(parse_name("tiny"))
    blob = store.blobs.path(manifest.model.digest)
    assert blob.stat().st_ino != user_file.stat().st_ino
    _scribble(user_file)
    assert sha256_file(blob) == manifest.model.digest
    store.check(manifest)  # still what the manifest says
    _create(store, "tiny2", user_file)  # the changed file: hashed, not trusted by name and size
    changed = store.get(parse_name("tiny2")).model
    assert changed.digest != manifest.model.digest == sha256_file(blob)
    assert changed.digest == sha256_file(user_file)


def test_a_file_used_in_place_is_refused_once_it_changes(tmp_path: Path, user_file: Path) -> None:
    store = Store(tmp_path / "models")
    _create(store, "big", user_file, in_place=True)
    manifest = store.get(parse_name("big"))
    layer = manifest.model
    assert layer.in_place is not None and layer.in_place.path == str(user_file.resolve())
    assert store.blobs.path(layer.digest).is_symlink()  # no second copy
    assert layer.in_place.size == user_file.stat().st_size
    store.check(manifest)
    assert store.get(parse_name("big")) == manifest  # the record survives the manifest's JSON
    _scribble(user_file)
    with pytest.raises(BlobChanged, match=r"big uses .*tiny\.gguf in place, and it was modified"):
        store.check(manifest)
    with pytest.raises(BlobChanged, match="localllm create big -f MODELFILE --in-place"):
        store.check(manifest)
    assert store.remove(parse_name("big")) == [layer.digest]
    assert user_file.is_file()  # removing the model never removes the user's file


def test_a_blob_of_the_wrong_size_is_refused_before_a_load(tmp_path: Path, user_file: Path) -> None:
    store = Store(tmp_path / "models")
    _create(store, "tiny", user_file)
    manifest = store.get(parse_name("tiny"))
    with store.blobs.path(manifest.model.digest).open("ab") as f:
        f.write(b"more")
    with pytest.raises(BlobChanged, match=r"its manifest says .*`localllm verify tiny --repair`"):
        store.check(manifest)
    store.blobs.path(manifest.model.digest).unlink()
    with pytest.raises(BlobChanged, match="is missing"):
        store.check(manifest)


def test_verify_names_a_changed_blob_and_repair_restores_or_removes(
    tmp_path: Path, user_file: Path
) -> None:
    store = Store(tmp_path / "models")
    _create(store, "tiny", user_file)
    store.copy(parse_name("tiny"), parse_name("copy"))
    other = write_model(TINY, tmp_path / "user" / "other.gguf", seed=3)
    _create(store, "other", other)
    assert verify(store, store.list()) == []
    digest = store.get(parse_name("tiny")).model.digest
    _scribble(store.blobs.path(digest))
    (bad,) = verify(store, store.list())
    assert bad.digest == digest and bad.models == ("copy", "tiny")
    assert "hash to sha256-" in bad.problem
    said = repair(store, [bad])
    assert said == [f"{digest}: restored from {user_file.resolve()}"]  # the source still matches
    assert verify(store, store.list()) == []
    other_digest = store.get(parse_name("other")).model.digest
    _scribble(store.blobs.path(other_digest))
    _scribble(other)  # the source changed too: nothing to restore from
    (bad,) = verify(store, store.list())
    (line,) = repair(store, [bad])
    assert "other removed; it cannot be restored" in line
    assert sorted(n.short for n in store.manifests.names()) == ["copy", "tiny"]


def test_prune_removes_what_dead_processes_and_removals_left(
    tmp_path: Path, user_file: Path, dead_pid: int
) -> None:
    store = Store(tmp_path / "models")
    _create(store, "tiny", user_file)
    blobs = store.blobs.root
    left = blobs / f".sha256-{'b' * 64}.tmp-{dead_pid}-0123abcd"
    left.write_bytes(b"x" * 1000)
    mine = blobs / f".sha256-{'c' * 64}.tmp-{os.getpid()}-0123abcd"
    mine.write_bytes(b"y")
    partial = blobs / f"sha256-{'d' * 64}.partial"
    partial.write_bytes(b"resumable")
    (blobs / f"sha256-{'d' * 64}.partial.json").write_text("{}")
    manifest_tmp = (
        store.manifests.root / "library" / "tiny" / f".latest.json.tmp-{dead_pid}-00ff00ff"
    )
    manifest_tmp.write_text("{")
    old_unused = blobs / f"sha256-{'e' * 64}"
    old_unused.write_bytes(b"z" * 10)
    os.utime(old_unused, (1, 1))
    young_upload = blobs / f"sha256-{'f' * 64}"
    young_upload.write_bytes(b"upload")
    pruned = prune(store)
    assert sorted(p.name for p in pruned.temporary) == sorted([left.name, manifest_tmp.name])
    assert [p.name for p in pruned.unused] == [old_unused.name]
    assert pruned.bytes == 1000 + 1 + 10
    assert mine.exists() and partial.exists() and young_upload.exists()
    assert store.blobs.has(store.get(parse_name("tiny")).model.digest)


def test_prune_keeps_every_blob_while_a_manifest_cannot_be_read(
    tmp_path: Path, user_file: Path
) -> None:
    store = Store(tmp_path / "models")
    _create(store, "tiny", user_file)
    path = store.manifests.path(parse_name("tiny"))
    path.write_text("{damaged")
    pruned = prune(store, now=1e12)
    assert pruned.unused == [] and pruned.kept_because and "damaged" in pruned.kept_because
    assert len(list(store.blobs.digests())) == 1
