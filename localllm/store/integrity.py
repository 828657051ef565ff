"""Checking the store against itself: blobs re-hashed (`localllm verify`), and what a
crash or a removal left behind cleared away (`localllm prune`, and each server start).

- `verify`: every blob of the named models is hashed again and compared with its name;
  a blob whose bytes changed (a disk error, a file edited under an in-place model) is
  named with the models that use it. `--repair` pulls those models again from where they
  came from, or removes them when that cannot be done.
- `prune`: temporary files of processes that are gone (`.NAME.tmp-PID-XXXXXXXX`, from
  `atomic.temp_path`) are removed; partial downloads (`.partial`, `.partial.json`) are
  kept for `pull` to resume. Blobs no manifest uses are removed once older than a grace
  period (an upload waiting for its `/api/create` stays), as Ollama prunes at start.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from localllm.store.atomic import StoreError
from localllm.store.blobs import Progress, sha256_file
from localllm.store.manifests import Manifest
from localllm.store.store import Store

TEMP = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")
"""`atomic.temp_path`'s names: the writing process's id in the middle."""
GRACE_S = 3600.0
"""An unused blob younger than this is kept (an upload waiting for its create)."""


@dataclass(frozen=True)
class BadBlob:
    digest: str
    problem: str
    models: tuple[str, ...]
    """The models that use it (short names)."""


def verify(
    store: Store,
    manifests: Iterable[Manifest],
    on_blob: Callable[[str, int], Progress] | None = None,
) -> list[BadBlob]:
    """Hash every blob the models use once; `on_blob(digest, size)` gives the progress
    callback for that blob."""
    users: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for manifest in manifests:
        for layer in manifest.layers:
            users.setdefault(layer.digest, []).append(manifest.name.removesuffix(":latest"))
            sizes[layer.digest] = layer.size
    bad = []
    for digest, models in users.items():
        path = store.blobs.path(digest)
        progress = on_blob(digest, sizes[digest]) if on_blob is not None else None
        try:
            size = path.stat().st_size
            actual = sha256_file(path, progress) if size == sizes[digest] else None
        except OSError as exc:
            bad.append(BadBlob(digest, f"cannot be read ({exc.strerror})", tuple(models)))
            continue
        if actual is None:
            problem = f"is {size:,} bytes, its manifest says {sizes[digest]:,}"
        elif actual != digest:
            problem = f"its bytes hash to {actual}"
        else:
            continue
        bad.append(BadBlob(digest, problem, tuple(models)))
    return bad


@dataclass
class Pruned:
    temporary: list[Path] = field(default_factory=list)
    unused: list[Path] = field(default_factory=list)
    bytes: int = 0
    kept_because: str | None = None
    """Why unused blobs were not looked at (a manifest that cannot be read)."""


def prune(
    store: Store,
    now: float | None = None,
    grace_s: float = GRACE_S,
    alive: Callable[[int], bool] | None = None,
) -> Pruned:
    """Remove what a crash or a removal left: temporary files of dead processes, and
    blobs no manifest uses older than `grace_s`. Under the store's lock."""
    now = time.time() if now is None else now
    alive = alive or _alive
    pruned = Pruned()
    if not store.root.is_dir():
        return pruned
    with store.lock():
        for folder in (store.blobs.root, *_folders(store.manifests.root)):
            for path in _entries(folder):
                match = TEMP.match(path.name)
                if match and not alive(int(match.group(1))):
                    pruned.bytes += _remove(path)
                    pruned.temporary.append(path)
        try:
            manifests = store.list()
        except StoreError as exc:  # a damaged manifest: which blobs it uses is unknown
            pruned.kept_because = str(exc)
            return pruned
        in_use: set[str] = set()
        for manifest in manifests:
            in_use |= manifest.digests
        for digest in sorted(store.blobs.digests() - in_use):
            path = store.blobs.path(digest)
            try:
                if now - path.lstat().st_mtime < grace_s:
                    continue
            except OSError:
                continue
            pruned.bytes += _remove(path)
            pruned.unused.append(path)
    return pruned


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [root, *(p for p in root.rglob("*") if p.is_dir())]


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _remove(path: Path) -> int:
    try:
        size = path.lstat().st_size
        path.unlink()
    except OSError:
        return 0
    return size


def repair(store: Store, bad: Iterable[BadBlob], endpoint: str | None = None) -> list[str]:
    """Bring each bad blob back from where its layer came from (the Hub, a URL, the
    local file it was copied from, if that still has these bytes); the models using a
    blob that cannot come back are removed. One sentence per blob, saying which."""
    from localllm.errors import LocalLLMError
    from localllm.store.names import parse_name

    sources = {layer.digest: layer for m in store.list() for layer in m.layers}
    said = []
    for blob in bad:
        layer = sources[blob.digest]
        store.blobs.remove(blob.digest)
        try:
            if layer.in_place is not None:
                raise LocalLLMError(f"it is {layer.in_place.path}, used in place")
            _restore(store, blob.digest, layer.size, layer.source or "", endpoint)
            said.append(f"{blob.digest}: restored from {layer.source}")
        except LocalLLMError as exc:
            for model in blob.models:
                store.manifests.remove(parse_name(model))
            said.append(
                f"{blob.digest}: {', '.join(blob.models)} removed; it cannot be restored ({exc})"
            )
    return said


def _restore(store: Store, digest: str, size: int, source: str, endpoint: str | None) -> None:
    from localllm.errors import LocalLLMError
    from localllm.store.download import RemoteFile, fetch

    sha = digest.removeprefix("sha256-")
    if source.startswith("hf.co/") and source.count("/") >= 3:
        from huggingface_hub import hf_hub_url

        _, owner, repo, path = source.split("/", 3)
        fetch(RemoteFile(hf_hub_url(f"{owner}/{repo}", path, endpoint=endpoint), size, sha),
              store.blobs)  # fmt: skip
    elif source.startswith(("http://", "https://")):
        fetch(RemoteFile(source, size, sha), store.blobs)
    elif source:
        local = Path(source.removeprefix("ollama:"))
        if not local.is_file():
            raise LocalLLMError(f"{local} is gone")
        store.blobs.import_file(local, expected=digest)
    else:
        raise LocalLLMError("its manifest does not say where it came from")
