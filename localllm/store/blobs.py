"""Content-addressed files: each blob is named by its sha256, so one file serves every
model that uses it, and a blob's name proves its content.

Importing a local GGUF never moves or changes the user's file, and the store gets
bytes of its own: a copy-on-write clone where the file system supports it (reflink:
btrfs, XFS; later writes to the user's file do not reach it), else a streamed copy.
Never a hard link, which would share the user's later writes under a digest that
no longer matches. The digest is computed from the bytes as they land in the
store. A blob appears under its final name only when complete.

`link_in_place` is the explicit exception (`create --in-place`): the blob is a
symbolic link to the user's file, whose size and modification time the manifest
records (`InPlace`) and every load checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localllm.errors import LocalLLMError
from localllm.store.atomic import StoreError, fsync_dir, storage_error, temp_path

_DIGEST = re.compile(r"^sha256-([0-9a-f]{64})$")
_NAMED = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
_FICLONE = 0x40049409  # Linux ioctl: clone a file's extents
CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    """`sha256-<64 hex>`."""
    size: int
    how: str = "present"
    """How it arrived: `present`, `reflink`, `copy`, `in-place` or `upload`."""


Progress = Callable[[int, int], None]
"""(bytes done, bytes in all) as a file is read into the store."""


@dataclass(frozen=True)
class InPlace:
    """A file used where it lies (`create --in-place`), as it was when it was hashed."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> InPlace:
        st = path.stat()
        return cls(str(path), st.st_size, st.st_mtime_ns)

    def changed(self) -> str | None:
        """What changed since it was hashed, in words; None when nothing did."""
        try:
            st = Path(self.path).stat()
        except OSError as exc:
            return f"it cannot be read ({exc.strerror})"
        if st.st_size != self.size:
            return f"it is {st.st_size:,} bytes, not the {self.size:,} it was"
        if st.st_mtime_ns != self.mtime_ns:
            return "it was modified"
        return None


def sha256_file(path: Path, on_progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size if on_progress else 0
    done = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            if on_progress is not None:
                done += len(block)
                on_progress(done, total)
    return f"sha256-{digest.hexdigest()}"


class BadDigest(LocalLLMError):
    """Text that should name a blob (an API's `sha256:<hex>`, a manifest's layer) does not."""


def digest_name(text: object, where: str = "digest") -> str:
    """The store's name (`sha256-<hex>`) for a digest as APIs and Ollama's manifests write
    it (`sha256:<hex>`); BadDigest naming `where` for anything else, before it is a path."""
    match = _NAMED.match(text) if isinstance(text, str) else None
    if not match:
        raise BadDigest(f"{where}: {text!r} is not a sha256 digest (sha256:<64 hex digits>)")
    return f"sha256-{match.group(1)}"


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

    def import_file(
        self, source: Path, expected: str | None = None, on_progress: Progress | None = None
    ) -> Blob:
        """Bring a local file into the store as bytes of the store's own (the source is
        left exactly as it was); the digest is that of the bytes that landed."""
        if source.parent == self.root and _DIGEST.match(source.name) and not source.is_symlink():
            return Blob(source.name, source.stat().st_size, "present")  # hashed as it landed
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(self.root / "import")
        try:
            if _clone(source, tmp):
                how, digest = "reflink", sha256_file(tmp, on_progress)
            else:
                how, digest = "copy", _copy(source, tmp, on_progress)
            if expected is not None and digest != expected:
                raise DigestMismatch(f"{source}: sha256 is {digest}, expected {expected}")
            size = tmp.stat().st_size
            target = self.path(digest)
            if target.is_file() and not target.is_symlink() and target.stat().st_size == size:
                return Blob(digest, size, "present")
            tmp.replace(target)  # over a link in place too: the store's own bytes win
        except OSError as exc:
            if exc.filename is not None and Path(exc.filename) == source:
                raise StoreError(f"cannot read {source} ({exc.strerror})") from None
            raise storage_error(exc, self.root) from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.root)
        return Blob(digest, size, how)

    def link_in_place(
        self, source: Path, on_progress: Progress | None = None
    ) -> tuple[Blob, InPlace | None]:
        """Use `source` where it lies: hash it and link the blob to it. Returns the blob
        and what the manifest records (`InPlace`); None for the latter when the store
        already has these bytes of its own."""
        source = source.resolve()
        try:
            before = InPlace.of(source)
            digest = sha256_file(source, on_progress)
        except OSError as exc:
            raise StoreError(f"cannot read {source} ({exc.strerror})") from None
        if before.changed() is not None:
            raise StoreError(f"{source} changed while it was being read; try again")
        target = self.path(digest)
        if target.is_file() and not target.is_symlink():
            return Blob(digest, before.size, "present"), None
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
        try:
            tmp.symlink_to(source)
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise storage_error(exc, target) from None
        fsync_dir(self.root)
        return Blob(digest, before.size, "in-place"), before

    def receive(self, digest: str) -> BlobWriter:
        """A writer for a blob arriving in pieces (an upload): hashed as it is written,
        under its name only once complete and verified (`BlobWriter.commit`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self.path(digest))

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()


class DigestMismatch(StoreError):
    """What arrived is not the blob its digest names (the sender's fault: 400)."""

    status = 400


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


def _clone(source: Path, tmp: Path) -> bool:
    """A copy-on-write clone of `source` at `tmp`, where the file system makes one."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with source.open("rb") as src, tmp.open("xb") as dst:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def _copy(source: Path, tmp: Path, on_progress: Progress | None = None) -> str:
    """Copy, hashing what was written; returns its digest."""
    digest = hashlib.sha256()
    total = source.stat().st_size
    done = 0
    with source.open("rb") as src, tmp.open("xb") as dst:
        while block := src.read(CHUNK):
            dst.write(block)
            digest.update(block)
            done += len(block)
            if on_progress is not None:
                on_progress(done, total)
        dst.flush()
        os.fsync(dst.fileno())
    return f"sha256-{digest.hexdigest()}"
