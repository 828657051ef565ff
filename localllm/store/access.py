"""Which local files a `create` or a `pull` may read.

The CLI runs as the user and may read whatever the user names. The server runs on
behalf of whoever reaches its API, so a path in a request is refused unless it lies
in the store's uploaded blobs or in a folder the operator allowed (`serve
--allow-files DIR`). The refusal is one fixed sentence, said before the path is
looked at, so a client cannot tell an existing file from a missing one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from localllm.errors import LocalLLMError

REFUSED = (
    "the server does not read files from its own disk through the API: upload the file "
    "(POST /api/blobs/sha256:<digest>, then `files` in /api/create), or start the server "
    "with --allow-files DIR"
)


class FileRefused(LocalLLMError):
    """A request named a file on the server's disk that it may not read."""

    status = 403

    def __init__(self, where: str) -> None:
        super().__init__(f"{where}: {REFUSED}")


@dataclass(frozen=True)
class FileAccess:
    folders: tuple[Path, ...] | None = None
    """The folders whose files may be read; None: any file (the CLI)."""

    def check(self, path: Path, where: str) -> Path:
        """`path` resolved (symbolic links followed), if it may be read; else
        `FileRefused` naming `where` (the field or Modelfile line)."""
        if self.folders is None:
            return path
        if not path.is_absolute():
            raise FileRefused(where)
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError):
            raise FileRefused(where) from None
        for folder in self.folders:
            if real.is_relative_to(Path(os.path.realpath(folder))):
                return real
        raise FileRefused(where)


ANY_FILE = FileAccess()
