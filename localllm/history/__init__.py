"""Chat history: conversations kept in SQLite in the data folder.

The TUI saves each turn as it ends and lists, resumes, renames, deletes
and exports chats through `ChatStore`. Opening a store creates the file
and brings its schema up to date (`migrations.py`); nothing happens at
import.
"""

from localllm.history.export import to_markdown
from localllm.history.store import Chat, ChatStore, ChatSummary, HistoryError, Message

__all__ = ["Chat", "ChatStore", "ChatSummary", "HistoryError", "Message", "to_markdown"]
