"""Blobs arriving in pieces (localllm/store/blobs.py `receive`): named only once whole
and verified; a cut-off or mismatched upload leaves no file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from localllm.store.blobs import BlobStore, DigestMismatch

DATA = b"some model bytes" * 1000
DIGEST = "sha256-" + hashlib.sha256(DATA).hexdigest()


def test_an_upload_is_named_once_verified(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    writer = blobs.receive(DIGEST)
    for i in range(0, len(DATA), 4096):
        writer.write(DATA[i : i + 4096])
        assert not blobs.has(DIGEST)
    blob = writer.commit()
    assert (blob.digest, blob.size, blob.how) == (DIGEST, len(DATA), "upload")
    assert blobs.path(DIGEST).read_bytes() == DATA
    assert [p.name for p in blobs.root.iterdir()] == [DIGEST]


def test_a_cut_off_or_wrong_upload_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    cut = blobs.receive(DIGEST)
    cut.write(DATA[:100])
    cut.abort()
    wrong = blobs.receive(DIGEST)
    wrong.write(b"other bytes")
    with pytest.raises(DigestMismatch, match="not the sha256:"):
        wrong.commit()
    assert list(blobs.root.iterdir()) == []
