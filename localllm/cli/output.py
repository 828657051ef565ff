"""Rich output without the trailing spaces its tables pad lines with: what a terminal
shows is unchanged, and text piped to a file or a diff has clean line ends."""

from __future__ import annotations

from typing import Any

from rich.console import Console


class Printer:
    """`print` as rich's, each line's trailing spaces removed."""

    def __init__(self) -> None:
        self.console = Console()

    def print(self, *objects: Any, **options: Any) -> None:
        with self.console.capture() as captured:
            self.console.print(*objects, **options)
        text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
        self.console.file.write(text)
        self.console.file.flush()
