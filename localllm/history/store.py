"""`ChatStore`: the chats of one user in one SQLite file.

Opening a store creates `<data>/history.db` if needed and runs any pending
migrations. Every change is one transaction, so a killed process or a full
disk leaves the last complete turn, never half of one. WAL mode lets the TUI
read while a turn is being saved. Errors from SQLite (a corrupt file, a
read-only or full disk) become `HistoryError` with what to do.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
from localllm.history.migrations import MIGRATIONS, migrate

TITLE_CHARS = 60


class HistoryError(LocalLLMError):
    """The history database cannot be read or written."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    thinking: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    """How the answer came: time to first token, tokens/s... (assistant messages)."""
    id: int = 0
    created: float = 0.0


@dataclass(frozen=True)
class ChatSummary:
    id: int
    title: str
    model: str
    updated: float
    messages: int


@dataclass(frozen=True)
class Chat:
    id: int
    title: str
    model: str
    system: str | None
    options: dict[str, Any]
    """Sampling parameters set for this chat (`/set parameter`), over the Modelfile's."""
    created: float
    updated: float
    messages: tuple[Message, ...] = ()


class ChatStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            migrate(self._db, MIGRATIONS)
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise HistoryError(
                f"chat history {path} cannot be opened ({exc}); move the file aside "
                "to start a new history"
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise HistoryError(f"chat history {self.path} could not be saved: {exc}") from None

    # --- chats ------------------------------------------------------------------------

    def create(
        self,
        model: str,
        title: str = "",
        system: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Chat:
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO chats (title, model, system, options, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (title, model, system, json.dumps(options or {}), now, now),
            )
        assert cursor.lastrowid is not None
        return self.load(cursor.lastrowid)

    def chats(self, limit: int = 100, offset: int = 0) -> list[ChatSummary]:
        """The most recently used first."""
        rows = self._read(
            "SELECT c.id, c.title, c.model, c.updated, COUNT(m.id) FROM chats c "
            "LEFT JOIN messages m ON m.chat_id = c.id GROUP BY c.id "
            "ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [ChatSummary(*row) for row in rows]

    def load(self, chat_id: int) -> Chat:
        """A chat with all its messages (one query each, however long the chat)."""
        rows = self._read(
            "SELECT id, title, model, system, options, created, updated FROM chats WHERE id = ?",
            (chat_id,),
        )
        if not rows:
            raise HistoryError(f"there is no chat {chat_id}")
        cid, title, model, system, options, created, updated = rows[0]
        messages = tuple(
            Message(role, content, thinking, json.loads(stats), mid, made)
            for mid, role, content, thinking, stats, made in self._read(
                "SELECT id, role, content, thinking, stats, created FROM messages "
                "WHERE chat_id = ? ORDER BY id",
                (chat_id,),
            )
        )
        return Chat(cid, title, model, system, json.loads(options), created, updated, messages)

    def title(self, chat_id: int) -> str:
        rows = self._read("SELECT title FROM chats WHERE id = ?", (chat_id,))
        if not rows:
            raise HistoryError(f"there is no chat {chat_id}")
        return str(rows[0][0])

    def rename(self, chat_id: int, title: str) -> None:
        self._update(chat_id, "title = ?", title.strip())

    def set_model(self, chat_id: int, model: str) -> None:
        self._update(chat_id, "model = ?", model)

    def set_system(self, chat_id: int, system: str | None) -> None:
        self._update(chat_id, "system = ?", system)

    def set_options(self, chat_id: int, options: dict[str, Any]) -> None:
        self._update(chat_id, "options = ?", json.dumps(options))

    def delete(self, chat_id: int) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM chats WHERE id = ?", (chat_id,)).rowcount == 0:
                raise HistoryError(f"there is no chat {chat_id}")

    def clear(self, chat_id: int) -> None:
        """Forget the messages, keep the chat and its settings (`/clear`)."""
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE chat_id = ?", (chat_id,))
            db.execute("UPDATE chats SET updated = ? WHERE id = ?", (self._clock(), chat_id))

    # --- messages ---------------------------------------------------------------------

    def add(self, chat_id: int, *messages: Message) -> None:
        """Append messages (a user turn and its answer together); an untitled chat takes
        its first user message as its title."""
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT title FROM chats WHERE id = ?", (chat_id,)).fetchone()
            if row is None:
                raise HistoryError(f"there is no chat {chat_id}")
            db.executemany(
                "INSERT INTO messages (chat_id, role, content, thinking, stats, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (chat_id, m.role, m.content, m.thinking, json.dumps(m.stats), now)
                    for m in messages
                ],
            )
            title = row[0] or next(
                (_title(m.content) for m in messages if m.role == "user" and m.content.strip()),
                "",
            )
            db.execute(
                "UPDATE chats SET updated = ?, title = ? WHERE id = ?", (now, title, chat_id)
            )

    # --- helpers ----------------------------------------------------------------------

    def _update(self, chat_id: int, assignment: str, value: object) -> None:
        with self._write() as db:
            done = db.execute(
                f"UPDATE chats SET {assignment}, updated = ? WHERE id = ?",
                (value, self._clock(), chat_id),
            )
            if done.rowcount == 0:
                raise HistoryError(f"there is no chat {chat_id}")

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(f"chat history {self.path} could not be read: {exc}") from None


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
