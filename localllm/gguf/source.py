"""Where header bytes come from: a local file, or (see `remote.py`) HTTP range reads.

The reader asks for byte ranges in order; a source answers with at most that
many bytes (fewer only at the end of the file). `size` is the full length when
known, so a header that claims more data than the file holds is caught.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

from localllm.errors import ModelFileError


class ByteSource(Protocol):
    @property
    def name(self) -> str:
        """How errors name the file: a path or a URL."""
        ...

    @property
    def size(self) -> int | None: ...

    def read(self, offset: int, length: int) -> bytes: ...


class FileSource:
    """A local file, read with plain positioned reads (no mmap: the header is small)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: BinaryIO = path.open("rb")
            self._size = path.stat().st_size
        except FileNotFoundError:
            raise ModelFileError(str(path), "no such file") from None
        except IsADirectoryError:
            raise ModelFileError(str(path), "is a directory, not a GGUF file") from None
        except OSError as exc:
            raise ModelFileError(str(path), f"cannot be read ({exc.strerror})") from None

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        try:
            self._file.seek(offset)
            return self._file.read(length)
        except OSError as exc:
            raise ModelFileError(self.name, f"read failed at byte {offset} ({exc})") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesSource:
    """Bytes already in memory (a fetched header, a test's mutation)."""

    def __init__(self, data: bytes, name: str = "<memory>", size: int | None = None) -> None:
        self.data = data
        self._name = name
        self._size = len(data) if size is None else size

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]
