"""Image paths in a prompt (`localllm.attachments`): what counts as one, with a fake
reader (no files needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from localllm.attachments import find_images

BASE = Path("/work")


def reader(*present: str) -> Callable[[Path], bytes | None]:
    files = {Path(p): f"bytes of {p}".encode() for p in present}
    return lambda path: files.get(path)


def test_a_relative_path_is_attached_and_taken_out_of_the_prompt() -> None:
    found = find_images("describe ./photo.png please", BASE, reader("/work/photo.png"))
    assert found.text == "describe please"
    assert [a.path for a in found.attachments] == [Path("/work/photo.png")]
    assert found.attachments[0].data == b"bytes of /work/photo.png"
    assert found.shown == "describe [image: photo.png] please"


def test_absolute_quoted_escaped_and_home_paths() -> None:
    home = Path("~/shot.JPG").expanduser()
    read = reader("/tmp/a.webp", "/tmp/my pics/b.png", "/tmp/c d.gif", str(home))
    found = find_images(
        "compare /tmp/a.webp, '/tmp/my pics/b.png' and /tmp/c\\ d.gif with ~/shot.JPG", BASE, read
    )
    assert [a.path for a in found.attachments] == [
        Path("/tmp/a.webp"), Path("/tmp/my pics/b.png"), Path("/tmp/c d.gif"), home,
    ]  # fmt: skip
    assert found.text == "compare , and with"


def test_what_is_not_a_readable_image_stays_as_typed() -> None:
    text = "see ./missing.png, notes.txt, /etc/passwd and www.example.com/x.png"
    found = find_images(text, BASE, reader())
    assert found.attachments == [] and found.text == text and found.shown == text
