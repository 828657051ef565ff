"""The help screen: keys, slash commands, where things are kept."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from localllm.tui.commands import HELP

KEYS = """\
# localllm

| Key | Where | What |
|---|---|---|
| Enter | chat | send |
| Shift+Enter, Ctrl+J | chat | new line |
| Up / Down | chat | earlier prompts |
| Esc | chat | stop the answer (what came is kept) |
| Ctrl+S | chat | system prompt and parameters of this chat |
| F4 | chat | copy the last answer (`/copy code` for a code block) |
| Ctrl+N | anywhere | new chat |
| F2 | anywhere | chats (resume, rename, delete, export) |
| F3 | anywhere | models (pull, delete, loaded, hardware) |
| Ctrl+P | anywhere | command palette: every action by name |
| F1 | anywhere | this help |
| Ctrl+Q | anywhere | quit |

## Slash commands

"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(KEYS + HELP)
