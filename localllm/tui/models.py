"""The models screen: local models with the planner's fit, pulls with live
progress, deletes, the loaded models and the server machine's hardware."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, ProgressBar, Static

from localllm.errors import LocalLLMError
from localllm.tui.advice import advice
from localllm.tui.dialogs import Confirm
from localllm.units import format_bytes

if TYPE_CHECKING:
    from localllm.tui.app import LocalLLMApp

BADGES = {"full GPU": "● full GPU", "partial": "◐ partial", "CPU": "○ CPU only"}


PLANNING = "… planning"
"""The Fit cell until the server's fits arrive: as wide as "○ CPU only", so the column
has its width from the first fill (a later, wider badge widens it)."""


def badge(fit: dict[str, Any] | None) -> str:
    if not fit:
        return "…"
    label = BADGES.get(fit["fit"], "✕ won't fit")
    if fit["fit"] == "partial":
        label += f" {fit['gpu_layers']}/{fit['layers']}"
    return label


def processor(model: dict[str, Any]) -> str:
    size, vram = model.get("size", 0), model.get("size_vram", 0)
    if vram and vram >= size:
        return "100% GPU"
    if vram:
        return f"{100 * vram // size}% GPU"
    return "100% CPU"


def hardware_text(report: dict[str, Any]) -> str:
    """A few lines of the hardware report: CPU, memory, GPUs, what llama.cpp can use."""
    cpu, memory = report.get("cpu", {}), report.get("memory", {})
    lines = [
        f"CPU     {cpu.get('brand', '?')}: {cpu.get('physical_cores', '?')} cores, "
        f"{cpu.get('recommended_threads', '?')} threads recommended",
        f"RAM     {format_bytes(memory.get('available', 0))} free of "
        f"{format_bytes(memory.get('total', 0))}",
    ]
    for gpu in report.get("gpus", []):
        lines.append(
            f"GPU     {gpu.get('name', '?')}: {format_bytes(gpu.get('memory_free', 0))} free of "
            f"{format_bytes(gpu.get('memory_total', 0))} ({gpu.get('backend', '?')})"
        )
    if not report.get("gpus"):
        lines.append("GPU     none found")
    llama = report.get("llama", {})
    offload = "yes" if llama.get("gpu_offload") else "no"
    backends = ", ".join(llama.get("backends", [])) or "none"
    lines.append(f"llama.cpp  {llama.get('version') or '?'} ({backends}); GPU offload: {offload}")
    return "\n".join(lines)


class ModelsScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "chat", "Chat"),
        Binding("d,delete", "delete", "Delete"),
        Binding("u", "unload", "Unload"),
        Binding("ctrl+l", "pull_focus", "Pull"),
        Binding("ctrl+r", "refresh", "Refresh"),
        Binding("escape", "back", "Back"),
    ]

    app: LocalLLMApp

    def __init__(self, pull: str | None = None) -> None:
        """`pull`: pull this model at once, then open a chat with it (`localllm run`)."""
        super().__init__()
        self.pull_then_chat = pull

    async def action_back(self) -> None:
        """Esc: back to the app's home, the chats."""
        await self.app.action_chats()

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Local models", classes="heading")
            yield DataTable(id="local", cursor_type="row", zebra_stripes=True)
            yield Static(
                "Pull a model (Ctrl+L): a catalogue name such as llama3.2:3b, or "
                "hf.co/OWNER/REPO[:QUANT]",
                classes="hint",
            )
            with Horizontal(id="pull-row"):
                yield Input(id="pull")
                yield ProgressBar(id="progress", show_eta=True)
            yield Label("", id="pull-status")
            yield Static("Loaded", classes="heading")
            yield DataTable(id="loaded", cursor_type="row")
            yield Static("Hardware", classes="heading")
            yield Static("…", id="hardware", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Models"
        local = self.query_one("#local", DataTable)
        local.add_columns("Name", "Size", "Quant", "Params")
        local.add_column("Fit", key="fit")
        self.query_one("#loaded", DataTable).add_columns(
            "Name", "Size", "Processor", "Context", "Until"
        )
        self.query_one("#progress").display = False
        self.query_one("#local").focus()
        self.action_refresh()
        self.set_interval(5, self.refresh_loaded)
        if self.pull_then_chat:
            self.query_one("#pull", Input).value = self.pull_then_chat
            self.pull(self.pull_then_chat)

    # exit_on_error=False: a refresh that ends as the screen goes (F2 at once) finds no
    # widgets left; that is not worth quitting the app over.
    @work(group="refresh", exclusive=True, exit_on_error=False)
    async def action_refresh(self) -> None:
        client = self.app.client
        try:
            models = await client.tags()
            self._fill_local(models, {})
            await self.refresh_loaded()
            self.query_one("#hardware", Static).update(hardware_text(await client.hardware()))
            fits = {f["name"]: f for f in await client.fit()}
        except LocalLLMError as exc:
            self.notify(advice(exc, client.base_url), title="Models", severity="error")
            return
        self._fill_local(models, fits)

    def _fill_local(self, models: list[dict[str, Any]], fits: dict[str, dict[str, Any]]) -> None:
        table = self.query_one("#local", DataTable)
        names = [m["name"] for m in models]
        if fits and [key.value for key in table.rows] == names:
            # The fits came for the rows shown: widen the column with them (a cleared and
            # refilled table may keep its old widths until it is next idle).
            for name in names:
                table.update_cell(name, "fit", badge(fits.get(name)), update_width=True)
            return
        row = table.cursor_row
        table.clear()
        for m in models:
            details = m.get("details", {})
            table.add_row(
                m["name"].removesuffix(":latest"),
                format_bytes(m.get("size", 0)),
                details.get("quantization_level", ""),
                details.get("parameter_size", ""),
                badge(fits.get(m["name"])) if fits else PLANNING,
                key=m["name"],
            )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    async def refresh_loaded(self) -> None:
        try:
            running = await self.app.client.ps()
        except LocalLLMError:
            return
        tables = self.query("#loaded").results(DataTable)
        table = next(iter(tables), None)
        if table is None:  # the screen is going
            return
        table.clear()
        for m in running:
            until = datetime.fromisoformat(m["expires_at"].replace("Z", "+00:00")).astimezone()
            table.add_row(
                m["name"].removesuffix(":latest"),
                format_bytes(m.get("size", 0)),
                processor(m),
                str(m.get("context_length", "")),
                f"{until:%H:%M:%S}",
                key=m["name"],
            )

    def _selected(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected, "#local")
    async def action_chat(self) -> None:
        name = self._selected("#local")
        if name:
            await self.app.new_chat(name)

    def action_delete(self) -> None:
        name = self._selected("#local")
        if name is None:
            return

        async def remove(yes: bool | None) -> None:
            if not yes or name is None:
                return
            try:
                await self.app.client.delete(name)
            except LocalLLMError as exc:
                self.notify(advice(exc, self.app.client.base_url), severity="error")
                return
            self.notify(f"Deleted {name}.")
            self.action_refresh()

        self.app.push_screen(Confirm(f"Delete {name} from the store?"), remove)

    @work(group="unload", exit_on_error=False)
    async def action_unload(self) -> None:
        name = self._selected("#loaded")
        if name is None:
            self.notify("No loaded model is selected (select one in the Loaded table).")
            return
        try:
            await self.app.client.stop(name)
        except LocalLLMError as exc:
            self.notify(advice(exc, self.app.client.base_url), severity="error")
            return
        await self.refresh_loaded()

    def action_pull_focus(self) -> None:
        self.query_one("#pull", Input).focus()

    @on(Input.Submitted, "#pull")
    def _pull_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.pull(event.value.strip())

    @work(group="pull", exclusive=True, exit_on_error=False)
    async def pull(self, name: str) -> None:
        bar = self.query_one("#progress", ProgressBar)
        status = self.query_one("#pull-status", Label)
        status.update(f"pulling {name}…")
        bar.display = True
        bar.update(total=None, progress=0)
        try:
            async for event in self.app.client.pull(name):
                if "plan" in event:
                    status.update("\n".join(event["plan"]))
                elif event.get("total"):
                    bar.update(total=event["total"], progress=event.get("completed", 0))
                elif event.get("status") == "success":
                    status.update(f"pulled {name}")
        except LocalLLMError as exc:
            status.update(f"pull of {name} failed")
            self.notify(advice(exc, self.app.client.base_url), title="Pull", severity="error")
            return
        finally:
            bar.display = False
        self.query_one("#pull", Input).clear()
        self.notify(f"Pulled {name}.")
        if name == self.pull_then_chat:
            await self.app.new_chat(name)
            return
        self.action_refresh()
