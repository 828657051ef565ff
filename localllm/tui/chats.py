"""The chats screen (home): the history, most recent first; resume, rename,
delete and export to Markdown."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from localllm.errors import LocalLLMError
from localllm.tui.dialogs import Ask, Confirm

if TYPE_CHECKING:
    from localllm.tui.app import LocalLLMApp


def export_name(title: str, chat_id: int) -> str:
    """A file name for a chat's Markdown export: its title, made safe."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:40]
    return f"{slug or 'chat'}-{chat_id}.md"


class ChatsScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("r", "rename", "Rename"),
        Binding("d,delete", "delete", "Delete"),
        Binding("e", "export", "Export .md"),
    ]

    app: LocalLLMApp

    def __init__(self, export_dir: Path | None = None) -> None:
        super().__init__()
        self.export_dir = export_dir or Path.cwd()

    def compose(self) -> ComposeResult:
        yield Static("Chats", classes="heading")
        yield DataTable(id="chats", cursor_type="row", zebra_stripes=True)
        yield Static(
            "No chats yet: Ctrl+N starts one, F3 shows the models.", id="empty", classes="hint"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Chats"
        table = self.query_one(DataTable)
        table.add_columns("Title", "Model", "Messages", "Last used")
        table.focus()

    def on_screen_resume(self) -> None:
        """Each time the screen is shown, the first time included: chats change elsewhere."""
        self.reload()

    def reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        chats = self.app.history.chats(limit=500)
        for c in chats:
            when = datetime.fromtimestamp(c.updated).strftime("%Y-%m-%d %H:%M")
            title = c.title or "(untitled)"
            table.add_row(title, c.model, str(c.messages), when, key=str(c.id))
        self.query_one("#empty").display = not chats

    def _selected(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(str(key.value))

    @on(DataTable.RowSelected)
    async def action_open(self) -> None:
        chat_id = self._selected()
        if chat_id is not None:
            await self.app.open_chat(chat_id)

    def action_rename(self) -> None:
        chat_id = self._selected()
        if chat_id is None:
            return

        def done(title: str | None) -> None:
            if title and chat_id is not None:
                self.app.history.rename(chat_id, title)
                self.reload()

        self.app.push_screen(Ask("New title", self.app.history.title(chat_id)), done)

    def action_delete(self) -> None:
        chat_id = self._selected()
        if chat_id is None:
            return

        def done(yes: bool | None) -> None:
            if yes and chat_id is not None:
                self.app.history.delete(chat_id)
                self.reload()
                self.notify("Deleted the chat.")

        title = self.app.history.title(chat_id) or "this chat"
        self.app.push_screen(Confirm(f"Delete {title!r} and its messages?"), done)

    def action_export(self) -> None:
        from localllm.history.export import to_markdown

        chat_id = self._selected()
        if chat_id is None:
            return
        chat = self.app.history.load(chat_id)
        path = self.export_dir / export_name(chat.title, chat.id)
        try:
            path.write_text(to_markdown(chat), encoding="utf-8")
        except OSError as exc:
            self.notify(f"Could not write {path}: {exc}", severity="error")
            return
        except LocalLLMError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"Exported to {path}")
