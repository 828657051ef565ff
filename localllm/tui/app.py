"""The Textual app: screens for chats (home), a chat, models, help; the command
palette; the client and the history every screen shares."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, TextArea

from localllm.errors import LocalLLMError
from localllm.history.store import Chat, ChatStore
from localllm.tui.chats import ChatsScreen
from localllm.tui.clipboard import clipboard_command, copy_to_file, copy_with_tool

if TYPE_CHECKING:
    from localllm.client import AsyncClient


class LocalLLMApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "localllm"
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "chats", "Chats"),
        Binding("f3", "models", "Models"),
        Binding("ctrl+n", "new_chat", "New chat"),
    ]

    def __init__(
        self,
        url: str,
        api_key: str | None,
        history_path: Path,
        model: str | None = None,
        export_dir: Path | None = None,
        cursor_blink: bool = True,
    ) -> None:
        """`cursor_blink=False` keeps every text cursor steadily on: what tests and
        snapshots need to look the same on any machine at any speed."""
        super().__init__()
        self.cursor_blink = cursor_blink
        self.url = url
        self.api_key = api_key
        self._client: AsyncClient | None = None
        self.history_path = history_path
        self.start_model = model
        self.export_dir = export_dir
        self._history: ChatStore | None = None

    @property
    def client(self) -> AsyncClient:
        """Made on first use: the home screen paints before httpx is imported."""
        if self._client is None:
            from localllm.client import AsyncClient

            self._client = AsyncClient(self.url, self.api_key)
        return self._client

    @property
    def history(self) -> ChatStore:
        """Opened on first use (creates the data folder and the database then)."""
        if self._history is None:
            self._history = ChatStore(self.history_path)
        return self._history

    async def on_mount(self) -> None:
        try:
            self.history.chats(limit=1)
        except LocalLLMError as exc:
            self.notify(f"{exc}. Chats are kept in memory only.", severity="error", timeout=15)
            self._history = ChatStore(Path(":memory:"))
        if self.start_model:
            from localllm.tui.chat import ChatScreen

            # Painted at once; the screen then asks the server about the model.
            self.show(ChatScreen(self.start_model))
        else:
            self.show(ChatsScreen(self.export_dir))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        widget = event.widget
        if not self.cursor_blink and isinstance(widget, Input | TextArea):
            widget.cursor_blink = False  # stays visible while focused

    async def on_unmount(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._history is not None:
            self._history.close()

    # --- screens ----------------------------------------------------------------------

    def show(self, screen: Screen[None]) -> None:
        """Make `screen` the one on show (the default screen stays under them all).

        Not awaited: a handler of the screen being replaced calls this, and waiting
        there for its own screen to go would never end.
        """
        if len(self.screen_stack) <= 1:
            self.push_screen(screen)
        else:
            self.switch_screen(screen)

    async def new_chat(self, model: str) -> None:
        """A new chat with `model` (Models screen, Ctrl+N)."""
        from localllm.tui.chat import ChatScreen

        prepared = await self.prepare_chat(model, pull=False)
        if prepared is not None:
            self.show(ChatScreen(*prepared))

    async def prepare_chat(self, model: str, pull: bool) -> tuple[Chat, dict[str, Any]] | None:
        """A new chat in the history, its system prompt and parameters from the model's
        Modelfile, with what `/api/show` said of the model. None when it cannot be (said
        in a notification), or when `pull` sent the app to the Models screen to pull a
        model the store lacks."""
        from localllm.client import ServerError
        from localllm.tui.advice import advice
        from localllm.tui.chat import ChatScreen
        from localllm.tui.settings import parse_parameters

        try:
            try:
                shown = await self.client.show(model)
            except ServerError as exc:
                if exc.status != 404 or not pull:
                    raise
                from localllm.tui.models import ModelsScreen

                self.show(ModelsScreen(pull=model))
                return None
            model = str(shown.get("name") or model).removesuffix(":latest")
            options = parse_parameters(shown.get("parameters", ""))
            chat = self.history.create(model, system=shown.get("system") or None, options=options)
            return chat, shown
        except LocalLLMError as exc:
            self.notify(advice(exc, self.client.base_url), title=model, severity="error")
            screen = self.screen
            if not isinstance(screen, ChatsScreen | ChatScreen) or getattr(
                screen, "pending", False
            ):
                self.show(ChatsScreen(self.export_dir))
            return None

    async def open_chat(self, chat_id: int) -> None:
        from localllm.tui.chat import ChatScreen

        try:
            chat = self.history.load(chat_id)
        except LocalLLMError as exc:
            self.notify(str(exc), severity="error")
            return
        self.show(ChatScreen(chat))

    def find_chat(self, name: str) -> int | None:
        """A chat by title (case-insensitive, the most recent) or by number."""
        chats = self.history.chats(limit=100_000)
        for c in chats:
            if c.title.lower() == name.lower():
                return c.id
        if name.isdigit() and any(c.id == int(name) for c in chats):
            return int(name)
        return None

    async def action_chats(self) -> None:
        self.show(ChatsScreen(self.export_dir))

    async def action_models(self) -> None:
        from localllm.tui.models import ModelsScreen

        self.show(ModelsScreen())

    def action_help(self) -> None:
        from localllm.tui.help import HelpScreen

        self.push_screen(HelpScreen())

    async def action_new_chat(self) -> None:
        from localllm.tui.chat import ChatScreen

        if isinstance(self.screen, ChatScreen):
            await self.new_chat(self.screen.chat.model)
        else:
            self.notify("Pick a model and press Enter to chat with it.")
            await self.action_models()

    def copy_text(self, text: str) -> str:
        """Copy to the clipboard every way there is; says how, for the notification."""
        self.copy_to_clipboard(text)  # OSC 52: the terminal's clipboard, over SSH too
        command = clipboard_command()
        if command and copy_with_tool(text, command):
            return f"to the clipboard ({Path(command[0]).name})"
        fallback = self.history_path.parent / "clipboard.txt"
        if copy_to_file(text, fallback):
            return f"through the terminal (OSC 52), and to {fallback}"
        return "through the terminal (OSC 52)"

    # --- the command palette ------------------------------------------------------------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "New chat", "A new chat with the current model (Ctrl+N)", self.action_new_chat
        )
        yield SystemCommand(
            "Chats", "The history: resume, rename, delete, export (F2)", self.action_chats
        )
        yield SystemCommand(
            "Models", "Local models, pull, delete, loaded, hardware (F3)", self.action_models
        )
        yield SystemCommand("Help", "Keys and slash commands (F1)", self.action_help)
        from localllm.tui.chat import ChatScreen
        from localllm.tui.models import ModelsScreen

        if isinstance(screen, ChatScreen):
            yield SystemCommand(
                "Stop the answer", "Keep what came so far (Esc)", screen.action_stop
            )
            yield SystemCommand("Copy the last answer", "To the clipboard (F4)", screen.action_copy)
            yield SystemCommand(
                "Copy the last code block", "Of the last answer", lambda: screen.action_copy("code")
            )
            yield SystemCommand(
                "System prompt and parameters", "Of this chat (Ctrl+S)", screen.action_settings
            )
            yield SystemCommand(
                "Clear the conversation",
                "As /clear",
                lambda: self.run_worker(screen.run_command("/clear")),
            )
            yield SystemCommand(
                "Show model info",
                "As /show info",
                lambda: self.run_worker(screen.run_command("/show info")),
            )
        if isinstance(screen, ChatsScreen):
            yield SystemCommand(
                "Open the chat", "Resume the selected chat (Enter)", screen.action_open
            )
            yield SystemCommand("Rename the chat", "(r)", screen.action_rename)
            yield SystemCommand("Delete the chat", "(d)", screen.action_delete)
            yield SystemCommand(
                "Export the chat", "To Markdown in the current folder (e)", screen.action_export
            )
        if isinstance(screen, ModelsScreen):
            yield SystemCommand("Pull a model", "Type its name (Ctrl+L)", screen.action_pull_focus)
            yield SystemCommand(
                "Chat with the model", "The selected one (Enter)", screen.action_chat
            )
            yield SystemCommand("Delete the model", "The selected one (d)", screen.action_delete)
            yield SystemCommand(
                "Unload the model", "The selected loaded one (u)", screen.action_unload
            )
            yield SystemCommand(
                "Refresh", "Models, loaded, hardware (Ctrl+R)", screen.action_refresh
            )
