"""The per-chat dialog: system prompt and sampling parameters, one `NAME VALUE` a line.

Prefilled with what the chat uses (at first the model's Modelfile); each line is
checked as `/set parameter` checks it, so a typo is named before anything is saved.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea

from localllm.tui.commands import CommandError, parse_command

Result = tuple[str | None, dict[str, Any]]


def parse_parameters(text: str) -> dict[str, Any]:
    """`NAME VALUE` lines into options; `stop` may repeat. CommandError names the line."""
    options: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            command = parse_command(f"/set parameter {line.strip()}")
        except CommandError as exc:
            raise CommandError(f"line {number}: {exc}") from None
        name = command.args[0]
        if name == "stop":
            options.setdefault("stop", []).append(command.value)
        else:
            options[name] = command.value
    return options


def format_parameters(options: dict[str, Any]) -> str:
    lines = []
    for name, value in options.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{name} {v}")
    return "\n".join(lines)


class SettingsScreen(ModalScreen[Result | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, system: str | None, options: dict[str, Any]) -> None:
        super().__init__()
        self.system = system or ""
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("System prompt")
            yield TextArea(self.system, id="system", soft_wrap=True)
            yield Label("Parameters (NAME VALUE per line: temperature 0.7, num_ctx 4096, stop ###)")
            yield TextArea(format_parameters(self.options), id="parameters")
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        try:
            options = parse_parameters(self.query_one("#parameters", TextArea).text)
        except CommandError as exc:
            self.notify(str(exc), title="Parameters", severity="error")
            return
        system = self.query_one("#system", TextArea).text.strip() or None
        self.dismiss((system, options))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
