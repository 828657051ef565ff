"""The chat screen: the conversation, the message box and the status line.

Every answer streams from the server through `AsyncClient.chat` in a worker;
Esc cancels that worker, which closes the connection (the server frees the
model at once) and keeps the partial answer. A turn is written to the history
when its answer ends, stopped or not. A long chat mounts only its last
`PAGE` messages; older ones come a page at a time from a button at the top.
"""

from __future__ import annotations

import base64
import time
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from localllm.errors import LocalLLMError
from localllm.history.store import Chat, Message
from localllm.reasoning import chunk_parts
from localllm.tui.advice import advice
from localllm.tui.commands import HELP, Command, CommandError, code_blocks, parse_command
from localllm.tui.messages import AnswerView, MessageView, Note
from localllm.tui.prompt import PromptArea
from localllm.tui.settings import format_parameters
from localllm.tui.status import Status

if TYPE_CHECKING:
    from localllm.attachments import Found
    from localllm.tui.app import LocalLLMApp

PAGE = 16
HINT = (
    "Type a message and press Enter (Shift+Enter: a new line). Esc stops an answer; "
    "/help lists the commands, /show info the model; Ctrl+S sets the system prompt."
)


class ChatScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+s", "settings", "System & parameters"),
        Binding("f4", "copy", "Copy answer"),
    ]

    app: LocalLLMApp

    def __init__(self, chat: Chat | str, model_info: dict[str, Any] | None = None) -> None:
        """`chat`: one from the history, or a model name: a new chat with it, made (and
        the model pulled first if the store lacks it) once the screen is up.
        `model_info`: what `/api/show` said of the model, when the caller has asked."""
        super().__init__()
        if isinstance(chat, str):
            self.pending = True
            chat = Chat(0, "", chat, None, {}, 0.0, 0.0)
        else:
            self.pending = False
        self.chat = chat
        self.messages: list[Message] = list(chat.messages)
        self.status = Status(chat.model, state="loading")
        self.model_info: dict[str, Any] = model_info or {}
        self._shown = 0

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="log"):
            yield Button("", id="earlier", variant="default")
        prompts = [m.content for m in self.messages if m.role == "user"]
        yield PromptArea(prompts, id="prompt")
        yield Static(self.status.text(), id="status", markup=False)
        yield Footer()

    async def on_mount(self) -> None:
        self.title = self.chat.title or "New chat"
        self.sub_title = self.chat.model
        await self._show_earlier()
        if not self.messages:
            await self.query_one("#log").mount(Static(HINT, id="hint", markup=False))
        self.query_one("#log", VerticalScroll).anchor()
        self.query_one(PromptArea).focus()
        self.call_after_refresh(self.start)

    @work(group="describe", exclusive=True)
    async def start(self) -> None:
        if self.pending:
            prepared = await self.app.prepare_chat(self.chat.model, pull=True)
            if prepared is None:
                return
            (chat, self.model_info), self.pending = prepared, False
            self.chat = chat
            self.sub_title = chat.model
            self.status = replace(self.status, model=chat.model)
        await self.describe_model()

    # --- the conversation -----------------------------------------------------------

    @on(Button.Pressed, "#earlier")
    async def _show_earlier(self) -> None:
        log = self.query_one("#log", VerticalScroll)
        button = self.query_one("#earlier", Button)
        end = len(self.messages) - self._shown
        start = max(0, end - PAGE)
        views = [
            MessageView(m.role, m.content, m.thinking, m.stats) for m in self.messages[start:end]
        ]
        if views:
            await log.mount_all(views, after=button)
        self._shown += len(views)
        left = len(self.messages) - self._shown
        button.label = f"Show {min(left, PAGE)} earlier of {left} messages"
        button.display = left > 0

    @on(PromptArea.Submitted)
    async def _submitted(self, event: PromptArea.Submitted) -> None:
        text = event.text
        if self.pending:
            self.notify("The chat is still opening; send again in a moment.")
            event.area.load_text(text)
            return
        if text.lstrip().startswith("/"):
            await self.run_command(text.strip())
            return
        if self.answering:
            self.notify("An answer is still coming: wait, or press Esc to stop it.")
            event.area.load_text(text)
            return
        for hint in self.query("#hint"):
            await hint.remove()
        asked = MessageView("user", self._found(text).shown if self._vision else text)
        await self.query_one("#log").mount(asked)
        self.answer(text, asked)

    @property
    def answering(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "answer")

    @property
    def _vision(self) -> bool:
        return "vision" in (self.model_info.get("capabilities") or ())

    @staticmethod
    def _found(text: str) -> Found:
        from localllm.attachments import find_images

        return find_images(text, Path.cwd())

    def _turn(self, role: str, content: str) -> dict[str, Any]:
        """A message for the server: a vision model's user turns carry the images their
        text names (read again each turn, so follow-up questions still see them)."""
        if role != "user" or not self._vision:
            return {"role": role, "content": content}
        found = self._found(content)
        images = [base64.b64encode(a.data).decode() for a in found.attachments]
        return {"role": role, "content": found.text, **({"images": images} if images else {})}

    def payload(self, prompt: str) -> list[dict[str, Any]]:
        system = [{"role": "system", "content": self.chat.system}] if self.chat.system else []
        turns = [self._turn(m.role, m.content) for m in self.messages]
        return [*system, *turns, self._turn("user", prompt)]

    @work(group="answer", exclusive=True)
    async def answer(self, prompt: str, asked: MessageView) -> None:
        view = AnswerView()
        await self.query_one("#log").mount(view)
        self.query_one("#log", VerticalScroll).anchor()
        self._set_status(state="waiting")
        started, ttft = time.monotonic(), None
        done: dict[str, Any] = {}
        failed = False
        try:
            stream = self.app.client.chat(
                self.chat.model, self.payload(prompt), options=self.chat.options
            )
            async with aclosing(stream):  # closed here, in this task, when Esc cancels
                async for chunk in stream:
                    parts = chunk_parts(chunk)  # thinking apart, as the server split it
                    if chunk.get("done"):
                        done = chunk
                    if parts and ttft is None:
                        ttft = time.monotonic() - started
                        self._set_status(state="answering")
                    for kind, text in parts:
                        if kind == "thinking":
                            await view.add_thinking(text)
                        else:
                            await view.add_content(text)
        except LocalLLMError as exc:
            # Nothing is kept of a failed turn; the prompt goes back in the box.
            failed = True
            await view.remove()
            await asked.remove()
            for area in self.query(PromptArea).results(PromptArea):
                area.load_text(prompt)
            self._set_status(state="")
            self.notify(advice(exc, self.app.client.base_url), title="Not sent", severity="error")
        finally:
            if not failed:
                # Done, or stopped (Esc, or leaving the screen, cancels this worker):
                # keep what came.
                stats = _stats(done, ttft, not done, self.chat.model)
                if view.is_attached:
                    await view.finish(stats)
                self._keep(prompt, view, stats, done)

    def _keep(
        self, prompt: str, view: AnswerView, stats: dict[str, Any], done: dict[str, Any]
    ) -> None:
        turn = (
            Message("user", prompt),
            Message("assistant", view.content, view.thinking or None, stats),
        )
        self.messages.extend(turn)
        self._shown += 2
        try:
            self.app.history.add(self.chat.id, *turn)
        except LocalLLMError as exc:
            self.notify(str(exc), title="History", severity="warning")
        used = done.get("prompt_eval_count", 0) + done.get("eval_count", 0)
        self._set_status(
            state="stopped" if stats.get("stopped") else "",
            tokens_per_s=stats.get("tokens_per_s"),
            ttft_s=stats.get("ttft_s"),
            context_used=used or self.status.context_used,
        )
        if not used:
            self.run_worker(self.recount(), group="count", exclusive=True)
        if not self.chat.title:
            self.chat = replace(self.chat, title=self.app.history.title(self.chat.id))
            self.title = self.chat.title

    def action_stop(self) -> None:
        for worker in self.workers:
            if worker.group == "answer" and worker.is_running:
                worker.cancel()

    # --- the status line ------------------------------------------------------------

    def _set_status(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        # A worker may finish while the screen is going: then there is nothing to update.
        for line in self.query("#status").results(Static):
            line.update(self.status.text())

    async def describe_model(self) -> None:
        """Quantization, layers and context for the status line; loads the model."""
        client = self.app.client
        try:
            if not self.model_info:  # a new chat's screen has it already
                self.model_info = await client.show(self.chat.model)
            details = self.model_info.get("details", {})
            self._set_status(
                model=self.chat.model,
                quantization=details.get("quantization_level", ""),
                state="loading",
            )
            await client.load(self.chat.model)
            running = {m["name"]: m for m in await client.ps()}
        except LocalLLMError as exc:
            self._set_status(state="not loaded")
            self.notify(advice(exc, client.base_url), title=self.chat.model, severity="error")
            return
        name = self.chat.model if ":" in self.chat.model else f"{self.chat.model}:latest"
        loaded = running.get(name, {})
        info = self.model_info.get("model_info", {})
        arch = info.get("general.architecture", "")
        blocks = info.get(f"{arch}.block_count")
        self._set_status(
            gpu_layers=loaded.get("gpu_layers"),
            layers=blocks + 1 if isinstance(blocks, int) else None,
            context_size=loaded.get("context_length", 0),
            state="",
        )
        if self.messages and not self.status.context_used:
            await self.recount()  # a resumed chat: how much of the context it fills

    async def recount(self) -> None:
        """The conversation's tokens as the model's prompt, for the status line (after
        resuming a chat, or an answer stopped before the server said its counts)."""
        payload = self.payload("")[:-1]  # the conversation, without a next prompt
        if not payload:
            return
        try:
            used = await self.app.client.count(self.chat.model, payload)
        except LocalLLMError:
            return  # the counter stays as it was; the chat goes on
        self._set_status(context_used=used)

    # --- slash commands -------------------------------------------------------------

    async def run_command(self, text: str) -> None:
        try:
            command = parse_command(text)
            await self.apply(command)
        except CommandError as exc:
            self.notify(str(exc), title="Command", severity="warning")
        except LocalLLMError as exc:
            self.notify(advice(exc, self.app.client.base_url), severity="error")

    async def note(self, text: str) -> None:
        await self.query_one("#log").mount(Note(text))
        self.query_one("#log", VerticalScroll).anchor()

    async def apply(self, command: Command) -> None:
        history = self.app.history
        name = command.name
        if name == "help":
            await self.note(HELP)
        elif name == "bye":
            self.app.exit()
        elif name == "set-parameter":
            name, value = command.args[0], command.value
            if name == "stop":  # stop sequences add up, as PARAMETER stop lines do
                value = [*self.chat.options.get("stop", []), value]
            options = {**self.chat.options, name: value}
            self.set_options(self.chat.system, options)
            await self.note(f"Set parameter `{name}` to `{value}`.")
        elif name == "set-system":
            self.set_options(command.args[0] or None, self.chat.options)
            await self.note(
                "Set the system prompt." if command.args[0] else "Cleared the system prompt."
            )
        elif name == "show":
            await self.note(self.show(command.args[0]))
        elif name == "clear":
            self.action_stop()
            history.clear(self.chat.id)
            self.messages.clear()
            self._shown = 0
            await self.query_one("#log").query(".message, .note").remove()
            self._set_status(context_used=0)
            await self.note("Cleared the conversation.")
        elif name == "save":
            history.rename(self.chat.id, command.args[0])
            self.chat = replace(self.chat, title=command.args[0])
            self.title = command.args[0]
            await self.note(
                f"Saved this chat as `{command.args[0]}`; `/load {command.args[0]}` opens it again."
            )
        elif name == "load":
            chat_id = self.app.find_chat(command.args[0])
            if chat_id is None:
                raise CommandError(f"no saved chat named {command.args[0]!r}; F2 lists the chats")
            await self.app.open_chat(chat_id)
        elif name == "model":
            await self.switch_model(command.args[0])
        elif name == "copy":
            self.copy(command.args)

    def set_options(self, system: str | None, options: dict[str, Any]) -> None:
        history = self.app.history
        history.set_system(self.chat.id, system)
        history.set_options(self.chat.id, options)
        self.chat = replace(self.chat, system=system, options=options)

    async def switch_model(self, model: str) -> None:
        self.action_stop()
        # Asked first: a clear 404 before anything changes.
        self.model_info = await self.app.client.show(model)
        self.app.history.set_model(self.chat.id, model)
        self.chat = replace(self.chat, model=model)
        self.sub_title = model
        self.status = Status(model, context_used=self.status.context_used, state="loading")
        self.start()
        await self.note(f"Now chatting with `{model}`.")

    def show(self, topic: str) -> str:
        info = self.model_info
        if topic == "info":
            details = info.get("details", {})
            model_info = info.get("model_info", {})
            arch = model_info.get("general.architecture", "")
            rows = [
                ("name", self.chat.model),
                ("architecture", details.get("family", arch)),
                ("parameters", details.get("parameter_size", "")),
                ("context length", model_info.get(f"{arch}.context_length", "")),
                ("capabilities", ", ".join(info.get("capabilities") or ())),
                ("quantization", details.get("quantization_level", "")),
                ("loaded context", self.status.context_size or "not loaded"),
            ]
            # as `localllm show` prints it
            return "```\nModel\n" + "\n".join(f"  {k:<16}{v}" for k, v in rows) + "\n```"
        if topic == "parameters":
            lines = format_parameters(self.chat.options).splitlines()
            return (
                "This chat's parameters:\n\n```\n"
                + ("\n".join(lines) or "(the model's defaults)")
                + "\n```"
            )
        if topic == "system":
            return "```\n" + (self.chat.system or "(no system prompt)") + "\n```"
        return "```\n" + (info.get(topic) or f"(no {topic})") + "\n```"

    # --- clipboard and dialogs ------------------------------------------------------

    def action_copy(self, what: str = "answer") -> None:
        try:
            self.copy((what,))
        except CommandError as exc:
            self.notify(str(exc), severity="warning")

    def copy(self, args: tuple[str, ...]) -> None:
        answers = [m for m in self.messages if m.role == "assistant"]
        if not answers:
            raise CommandError("there is no answer to copy yet")
        text = answers[-1].content
        what = "the last answer"
        if args[0] == "code":
            blocks = code_blocks(text)
            n = int(args[1]) if len(args) > 1 else len(blocks)
            if not blocks or n > len(blocks):
                raise CommandError(f"the last answer has {len(blocks)} code block(s)")
            text, what = blocks[n - 1], f"code block {n}"
        how = self.app.copy_text(text)
        self.notify(f"Copied {what} ({len(text)} characters) {how}.")

    def action_settings(self) -> None:
        from localllm.tui.settings import SettingsScreen

        def done(result: tuple[str | None, dict[str, Any]] | None) -> None:
            if result is not None:
                self.set_options(*result)
                self.notify("Saved this chat's system prompt and parameters.")

        self.app.push_screen(SettingsScreen(self.chat.system, self.chat.options), done)


def _stats(done: dict[str, Any], ttft: float | None, stopped: bool, model: str) -> dict[str, Any]:
    stats: dict[str, Any] = {"model": model}
    if ttft is not None:
        stats["ttft_s"] = round(ttft, 3)
    if stopped:
        stats["stopped"] = True
    for key in ("eval_count", "prompt_eval_count"):
        if key in done:
            stats[key] = done[key]
    if done.get("eval_duration"):
        stats["tokens_per_s"] = round(done["eval_count"] / (done["eval_duration"] / 1e9), 2)
    return stats
