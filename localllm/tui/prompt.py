"""The message box: a TextArea where Enter sends, as in a chat.

Shift+Enter (in terminals that report it) and Ctrl+J add a line. A message
that starts with `\"\"\"` goes on over several lines until a line ends with
`\"\"\"`, as in `ollama run`. Up on the first line and Down on the last walk
through the prompts sent before (this chat's, then older ones given at start).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.message import Message
from textual.widgets import TextArea

FENCE = '"""'


def fenced(text: str) -> str | None:
    """The message of a `\"\"\"` block that is complete, or None while it is still open
    (text that does not start with a fence is complete as it is)."""
    stripped = text.strip()
    if not stripped.startswith(FENCE):
        return text
    if len(stripped) > 3 and stripped.endswith(FENCE):
        return stripped[3:-3].strip("\n")
    return None


class PromptArea(TextArea):
    class Submitted(Message):
        def __init__(self, area: PromptArea, text: str) -> None:
            super().__init__()
            self.area = area
            self.text = text

    def __init__(self, history: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)  # type: ignore[arg-type]
        self.prompts: list[str] = list(history)
        self._recall: int | None = None
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            message = fenced(self.text)
            if message is None:
                self.insert("\n")
            elif message.strip():
                self.remember(message)
                self.post_message(self.Submitted(self, message))
                self.clear()
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key == "up" and self.cursor_location[0] == 0 and self.prompts:
            event.stop()
            event.prevent_default()
            self._step(-1)
            return
        if event.key == "down" and self._recall is not None and self._on_last_line():
            event.stop()
            event.prevent_default()
            self._step(1)
            return
        await super()._on_key(event)

    def remember(self, text: str) -> None:
        if not self.prompts or self.prompts[-1] != text:
            self.prompts.append(text)
        self._recall = None

    def _on_last_line(self) -> bool:
        return self.cursor_location[0] == self.document.line_count - 1

    def _step(self, direction: int) -> None:
        if self._recall is None:
            if direction > 0:
                return
            self._draft = self.text
            index = len(self.prompts) - 1
        else:
            index = self._recall + direction
        if index < 0:
            return
        if index >= len(self.prompts):
            self._recall = None
            self.load_text(self._draft)
        else:
            self._recall = index
            self.load_text(self.prompts[index])
        self.move_cursor(self.document.end)
