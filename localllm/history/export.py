"""A chat as a Markdown document (the TUI's export, and `/save` to a file)."""

from __future__ import annotations

from datetime import UTC, datetime

from localllm.history.store import Chat

SPEAKERS = {"user": "You", "assistant": "Assistant", "system": "System", "tool": "Tool"}


def to_markdown(chat: Chat) -> str:
    """Headings per turn; reasoning in a collapsed `<details>` block, as the chat shows it."""
    when = datetime.fromtimestamp(chat.created, UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# {chat.title or 'Untitled chat'}", "", f"Model `{chat.model}`, started {when}.", ""]
    if chat.system:
        out += ["## System", "", chat.system.strip(), ""]
    for message in chat.messages:
        out += [f"## {SPEAKERS.get(message.role, message.role.title())}", ""]
        if message.thinking:
            out += ["<details><summary>Thinking</summary>", "", message.thinking.strip(), "",
                    "</details>", ""]  # fmt: skip
        out += [message.content.strip(), ""]
    return "\n".join(out).rstrip() + "\n"
