"""Writes that are all or nothing: a reader sees the old file or the new one, never half.

Write to a temporary file beside the target, fsync it, rename it over the
target, fsync the folder (so the rename survives a power cut). A full disk
raises `StoreError` with the path, and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from localllm.errors import LocalLLMError


class StoreError(LocalLLMError):
    """The model store could not be read or written."""

    status = 500


class DiskFull(StoreError):
    """No space left where the store writes: the API's 507 Insufficient Storage."""

    status = 507


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (not possible, nor needed, on Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """Yield a file to write; on success it replaces `target` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        with tmp.open("xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes) -> None:
    with atomic_file(target) as f:
        f.write(data)


def storage_error(exc: OSError, path: Path) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"disk full while writing {path} (in {path.parent}): free some space and try again"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(f"no permission to write {path} ({exc.strerror})")
    return StoreError(f"cannot write {path} ({exc.strerror or exc})")
