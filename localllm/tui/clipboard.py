"""Copying text out of the terminal app.

The terminal's own clipboard (OSC 52, sent by Textual) works over SSH and in
most modern terminals, but some (macOS Terminal, tmux without `set-clipboard`)
drop it silently. So the text also goes to the desktop's clipboard tool when
one is installed, and to a file as the last resort that always works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

# The first installed one wins; Wayland before X11 so a mixed session uses the live one.
TOOLS = (
    ("wl-copy", ()),
    ("xclip", ("-selection", "clipboard")),
    ("xsel", ("--clipboard", "--input")),
    ("pbcopy", ()),
    ("clip.exe", ()),
)


def clipboard_command(
    which: Callable[[str], str | None] = shutil.which, env: Mapping[str, str] = os.environ
) -> list[str] | None:
    """The desktop clipboard tool to pipe into, or None (none installed, or no display)."""
    desktop = env.get("WAYLAND_DISPLAY") or env.get("DISPLAY")
    for name, args in TOOLS:
        needs_display = name in ("wl-copy", "xclip", "xsel")
        path = which(name)
        if path and (desktop or not needs_display):
            return [path, *args]
    return None


def copy_with_tool(text: str, command: list[str]) -> bool:
    try:
        subprocess.run(command, input=text.encode(), timeout=2, check=True, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def copy_to_file(text: str, path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return False
    return True
