"""Model references as users type them.

- `hf.co/OWNER/REPO[:QUANT]` (also `hf://`, `huggingface.co/`): a Hugging Face
  GGUF repository, optionally one quantization of it;
- `https://.../file.gguf`: one remote file;
- a path to a `.gguf` file (any shard of a split model) or a folder of them;
- a catalogue name, `llama3.2:3b` or `llama3.2:3b-q8_0` (see `catalogue.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from localllm.errors import LocalLLMError
from localllm.store.access import ANY_FILE, FileAccess
from localllm.store.catalogue import Catalogue
from localllm.store.names import parse_name

_HUB_PREFIXES = ("hf.co/", "hf://", "huggingface.co/", "https://huggingface.co/", "https://hf.co/")
_REPO = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<quant>[\w.-]+))?$")


class RefError(LocalLLMError):
    """A model reference that names nothing localllm can find."""


@dataclass(frozen=True)
class HubRef:
    repo: str
    quant: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        return f"hf.co/{self.repo}" + (f":{self.quant}" if self.quant else "")


@dataclass(frozen=True)
class UrlRef:
    url: str

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class PathRef:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


ModelRef = HubRef | UrlRef | PathRef


def parse_ref(
    text: str, catalogue: Catalogue | None = None, files: FileAccess = ANY_FILE
) -> ModelRef:
    """Parse a reference; bare names are looked up in `catalogue` (default: the shipped one).
    `files`: which local files the reference may name (the server's API: few); the disk is
    looked at only where they may lie."""
    text = text.strip()
    if not text:
        raise RefError("empty model reference")
    is_http = text.startswith(("http://", "https://"))
    if is_http and ("/resolve/" in text or text.lower().split("?", 1)[0].endswith(".gguf")):
        return UrlRef(text)
    for prefix in _HUB_PREFIXES:
        if text.startswith(prefix):
            match = _REPO.match(text.removeprefix(prefix).rstrip("/"))
            if not match:
                raise RefError(f"{text!r}: expected hf.co/OWNER/REPO or hf.co/OWNER/REPO:QUANT")
            return HubRef(match.group("repo"), match.group("quant"))
    path = Path(text).expanduser()
    if files.folders is not None:
        if text.lower().endswith(".gguf") or text.startswith(("/", "~", ".")):
            return PathRef(files.check(path, "model"))
    elif _is_there(path) or text.lower().endswith(".gguf"):
        return PathRef(path)
    catalogue = catalogue if catalogue is not None else Catalogue()
    try:
        resolved = catalogue.resolve(parse_name(text))
    except LocalLLMError:
        resolved = None
    if resolved is not None:
        return HubRef(resolved.repo, resolved.quant)
    close = catalogue.suggest(text)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise RefError(
        f"{text!r} is not in the catalogue, nor a GGUF file, a folder, an "
        f"hf.co/OWNER/REPO reference or a URL.{hint}"
    )


def _is_there(path: Path) -> bool:
    """Whether `path` exists; False for text that cannot be a path at all (too long for
    the file system, a NUL byte) instead of the OS error."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
