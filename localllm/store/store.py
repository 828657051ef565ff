"""The local model store: blobs and manifests under one folder, changed under a lock.

Layout under `LOCALLLM_MODELS` (default `<data>/models`):

    blobs/sha256-<hex>                     weights and adapters, by content
    manifests/<namespace>/<model>/<tag>.json
    .lock                                  held while the store changes

A blob is deleted only when no manifest uses it. Nothing is created until
something is written.
"""

from __future__ import annotations

import builtins
import difflib
from pathlib import Path

from filelock import FileLock

from localllm.gguf.info import ModelInfo, describe
from localllm.gguf.reader import GGUFHeader, read_header
from localllm.gguf.source import FileSource
from localllm.store.atomic import StoreError
from localllm.store.blobs import BlobStore
from localllm.store.manifests import Manifest, ManifestStore, ModelNotFoundError
from localllm.store.names import ModelName


class BlobChanged(StoreError):
    """A blob is not what its manifest says: refused before llama.cpp reads it."""

    status = 409


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = BlobStore(root / "blobs")
        self.manifests = ManifestStore(root / "manifests")

    def lock(self) -> FileLock:
        """Held while manifests or blobs change, so two processes never race a removal."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=600)

    def get(self, name: ModelName) -> Manifest:
        try:
            return self.manifests.read(name)
        except ModelNotFoundError as exc:
            close = self.similar(name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ModelNotFoundError(f"{exc}{hint}") from None

    def similar(self, name: ModelName, limit: int = 3) -> list[str]:
        known = [n.short for n in self.manifests.names()]
        return difflib.get_close_matches(name.short, known, n=limit, cutoff=0.6)

    def put(self, manifest: Manifest) -> None:
        missing = [d for d in manifest.digests if not self.blobs.has(d)]
        if missing:
            raise ModelNotFoundError(f"blobs {', '.join(missing)} are not in the store")
        with self.lock():
            self.manifests.write(manifest)

    def copy(self, source: ModelName, target: ModelName) -> Manifest:
        manifest = self.get(source).renamed(target)
        self.put(manifest)
        return manifest

    def remove(self, name: ModelName) -> list[str]:
        """Remove a model; returns the blobs freed (those no other model uses)."""
        with self.lock():
            manifest = self.get(name)
            self.manifests.remove(name)
            in_use = set()
            for other in self.manifests.names():
                in_use |= self.manifests.read(other).digests
            freed = sorted(manifest.digests - in_use)
            for digest in freed:
                self.blobs.remove(digest)
        return freed

    def check(self, manifest: Manifest) -> None:
        """The cheap check before every load: each blob has its manifest's size, and a
        file used in place is as it was hashed. (`verify` re-hashes them.)"""
        short = manifest.name.removesuffix(":latest")
        for layer in manifest.layers:
            if layer.in_place is not None:
                changed = layer.in_place.changed()
                if changed is not None:
                    raise BlobChanged(
                        f"{short} uses {layer.in_place.path} in place, and {changed} since "
                        f"it was created: run `localllm create {short} -f MODELFILE --in-place` "
                        "again to take its new bytes (or `localllm rm` the model)"
                    )
            path = self.blobs.path(layer.digest)
            try:
                size = path.stat().st_size
            except OSError:
                raise BlobChanged(
                    f"{short}: its blob {layer.digest} is missing; run "
                    f"`localllm verify {short} --repair`"
                ) from None
            if size != layer.size:
                raise BlobChanged(
                    f"{short}: its blob {layer.digest} is {size:,} bytes, its manifest says "
                    f"{layer.size:,}; run `localllm verify {short} --repair`"
                )

    def list(self) -> list[Manifest]:
        return [self.manifests.read(n) for n in self.manifests.names()]

    def model_paths(self, manifest: Manifest) -> builtins.list[Path]:
        """The blobs of the model's weights: one, or every shard in order."""
        return [self.blobs.path(layer.digest) for layer in (manifest.model, *manifest.parts)]

    def read_model(self, manifest: Manifest) -> tuple[ModelInfo, GGUFHeader]:
        """The model facts of a stored model (every shard), and its first header."""
        headers = []
        for path in self.model_paths(manifest):
            with FileSource(path) as source:
                headers.append(read_header(source))
        return describe(headers), headers[0]
