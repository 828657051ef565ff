"""The widgets of one message: a user's prompt, an answer (streamed), a note.

An answer streams into a Textual `Markdown` through `MarkdownStream`, which
batches fragments that arrive faster than they can be laid out, so the screen
keeps up at any token rate. Thinking goes to a collapsible block above the
answer: open while the model thinks, closed once the answer starts.
"""

from __future__ import annotations

from typing import Any

from rich.markdown import Markdown as RichMarkdown
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Collapsible, Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream


def stats_text(stats: dict[str, Any]) -> str:
    """The answer's footnote: tokens, speed, time to first token, stopped or not."""
    parts = []
    if stats.get("eval_count"):
        parts.append(f"{stats['eval_count']} tokens")
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens_per_s']:.1f} tok/s")
    if stats.get("ttft_s") is not None:
        parts.append(f"TTFT {stats['ttft_s']:.2f} s")
    if stats.get("stopped"):
        parts.append("stopped")
    if stats.get("model"):
        parts.append(str(stats["model"]))
    return " · ".join(parts)


def _thinking_block(text: str, collapsed: bool) -> Collapsible:
    return Collapsible(
        Static(text, classes="thinking-text", markup=False),
        title="Thinking",
        collapsed=collapsed,
        classes="thinking",
    )


class MessageView(Vertical):
    """A message as it is kept: role, Markdown, and for answers thinking and stats."""

    def __init__(
        self,
        role: str,
        content: str = "",
        thinking: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(classes=f"message {role}")
        self.role = role
        self.content = content
        self.thinking = thinking or ""
        self.stats = stats or {}

    def compose(self) -> ComposeResult:
        yield Label("You" if self.role == "user" else self.role.capitalize(), classes="role")
        if self.thinking:
            yield _thinking_block(self.thinking, collapsed=True)
        yield self._body()
        yield Static(stats_text(self.stats), classes="stats", markup=False)

    def _body(self) -> Widget:
        # One Static per kept message (Rich renders the Markdown): a long chat mounts
        # several times faster than with Textual's Markdown, a widget per block.
        if self.role == "user":
            return Static(self.content, classes="body", markup=False)
        return Static(RichMarkdown(self.content, code_theme="monokai"), classes="body")


class AnswerView(MessageView):
    """An answer being streamed (Textual's Markdown, which appends); `finish` settles it."""

    def __init__(self) -> None:
        super().__init__("assistant")
        self._stream: MarkdownStream | None = None

    def _body(self) -> Widget:
        return Markdown("", classes="body")

    async def add_thinking(self, text: str) -> None:
        self.thinking += text
        blocks = self.query(Collapsible)
        if not blocks:
            await self.mount(_thinking_block(self.thinking, collapsed=False), before=1)
        else:
            blocks.first().query_one(".thinking-text", Static).update(self.thinking)

    async def add_content(self, text: str) -> None:
        if self._stream is None:
            for block in self.query(Collapsible):
                block.collapsed = True
            self._stream = Markdown.get_stream(self.query_one(".body", Markdown))
        self.content += text
        await self._stream.write(text)

    async def finish(self, stats: dict[str, Any]) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.stats = stats
        self.query_one(".stats", Static).update(stats_text(stats))


class Note(Markdown):
    """What a slash command answers: shown in the chat, not kept in the history."""

    def __init__(self, text: str) -> None:
        super().__init__(text, classes="note")
