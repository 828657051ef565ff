"""Image files named in a prompt, as Ollama's CLI reads them: `localllm run MODEL
"describe ./photo.png"` attaches the file and asks about it.

A path counts when it starts with `/`, `./`, `../` or `~/` (or is quoted) and ends in
an image suffix, and only when it names a file that can be read: any other text,
a path that is not there included, stays in the prompt as typed. Used by the CLI and
the chat; the files are read when the prompt is sent, never kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = ("png", "jpg", "jpeg", "webp", "gif", "bmp")
_SUFFIX = "|".join(SUFFIXES)
_PATH = re.compile(
    rf"""(?P<q>['"])(?P<quoted>[^'"\n]+?\.(?:{_SUFFIX}))(?P=q)"""
    rf"""|(?P<bare>(?:~|\.{{1,2}})?/(?:\\ |\S)+?\.(?:{_SUFFIX}))(?=$|[\s,;:!?)])""",
    re.IGNORECASE,
)
MAX_BYTES = 32 << 20
"""What the server takes (`inference.images.MAX_BYTES`); a larger file is left alone."""


@dataclass(frozen=True)
class Attachment:
    path: Path
    data: bytes


@dataclass(frozen=True)
class Found:
    text: str
    """The prompt without the paths of the files attached."""
    attachments: list[Attachment] = field(default_factory=list)
    shown: str = ""
    """The prompt as the chat shows it: each attached path as `[image: NAME]`."""


def _read(path: Path) -> bytes | None:
    try:
        if path.is_file() and path.stat().st_size <= MAX_BYTES:
            return path.read_bytes()
    except OSError:
        pass
    return None


def find_images(text: str, base: Path, read: Callable[[Path], bytes | None] = _read) -> Found:
    """The image files `text` names (relative paths from `base`), read with `read`."""
    attachments: list[Attachment] = []
    kept: list[str] = []
    shown: list[str] = []
    end = 0
    for match in _PATH.finditer(text):
        raw = match.group("quoted") or match.group("bare").replace("\\ ", " ")
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else base / path
        data = read(path)
        if data is None:
            continue
        attachments.append(Attachment(path, data))
        kept.append(text[end : match.start()])
        shown.append(text[end : match.start()] + f"[image: {path.name}]")
        end = match.end()
    kept.append(text[end:])
    shown.append(text[end:])
    prompt = re.sub(r"[ \t]{2,}", " ", "".join(kept)).strip()
    return Found(prompt, attachments, "".join(shown))
