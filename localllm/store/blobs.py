"""Content-addressed files: each blob is named by its sha256, so one file serves every
model that uses it, and a blob's name proves its content.

Importing a local GGUF never moves or changes the user's file and never keeps
two copies: a copy-on-write clone where the file system supports it (reflink:
btrfs, XFS, APFS-like), else a hard link (same inode, no extra space), else a
copy. A blob appears under its final name only when complete and verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from localllm.store.atomic import StoreError, fsync_dir, storage_error, temp_path

_DIGEST = re.compile(r"^sha256-([0-9a-f]{64})$")
_FICLONE = 0x40049409  # Linux ioctl: clone a file's extents
CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    """`sha256-<64 hex>`."""
    size: int
    how: str = "present"
    """How it arrived: `present`, `reflink`, `hardlink`, `copy` or `upload`."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return f"sha256-{digest.hexdigest()}"


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise StoreError(f"not a blob digest: {digest!r}")
    return digest


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / check_digest(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def digests(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.name for p in self.root.iterdir() if _DIGEST.match(p.name)}

    def import_file(self, source: Path, expected: str | None = None) -> Blob:
        """Bring a local file into the store (the source is left exactly as it was)."""
        try:
            size = source.stat().st_size
            digest = sha256_file(source)
        except OSError as exc:
            raise StoreError(f"cannot read {source} ({exc.strerror})") from None
        if expected is not None and digest != expected:
            raise StoreError(f"{source}: sha256 is {digest}, expected {expected}")
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == size:
            return Blob(digest, size, "present")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
        try:
            how = _clone(source, tmp) or _link(source, tmp)
            if how is None:
                how = "copy"
                if _copy(source, tmp) != digest:
                    raise StoreError(f"{source} changed while it was being imported; try again")
            tmp.replace(target)
        except OSError as exc:
            raise storage_error(exc, target) from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.root)
        return Blob(digest, size, how)

    def receive(self, digest: str) -> BlobWriter:
        """A writer for a blob arriving in pieces (an upload): hashed as it is written,
        under its name only once complete and verified (`BlobWriter.commit`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self.path(digest))

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()


class DigestMismatch(StoreError):
    """What arrived is not the blob its digest names."""


class BlobWriter:
    """One upload into a temporary file beside the blob; `commit` verifies and renames
    it, `abort` (or any failure) removes it, so no half-written blob is ever seen."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = temp_path(target)
        self.size = 0
        self._hash = hashlib.sha256()
        try:
            self._file = self.tmp.open("xb")
        except OSError as exc:
            raise storage_error(exc, target) from None

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise storage_error(exc, self.target) from None
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> Blob:
        digest = f"sha256-{self._hash.hexdigest()}"
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if digest != self.target.name:
                raise DigestMismatch(
                    f"the upload's sha256 is {digest.replace('-', ':', 1)}, not the "
                    f"{self.target.name.replace('-', ':', 1)} it was sent as"
                )
            self.tmp.replace(self.target)
        except OSError as exc:
            raise storage_error(exc, self.target) from None
        finally:
            self.abort()
        fsync_dir(self.target.parent)
        return Blob(digest, self.size, "upload")

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


def _clone(source: Path, tmp: Path) -> str | None:
    try:
        import fcntl
    except ImportError:
        return None
    try:
        with source.open("rb") as src, tmp.open("xb") as dst:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return "reflink"


def _link(source: Path, tmp: Path) -> str | None:
    try:
        os.link(source, tmp)
    except OSError:
        return None
    return "hardlink"


def _copy(source: Path, tmp: Path) -> str:
    """Copy, hashing what was written; returns its digest."""
    digest = hashlib.sha256()
    with source.open("rb") as src, tmp.open("xb") as dst:
        while block := src.read(CHUNK):
            dst.write(block)
            digest.update(block)
        dst.flush()
        os.fsync(dst.fileno())
    return f"sha256-{digest.hexdigest()}"
