"""The history database's schema, as the list of steps that built it.

Each function takes a connection inside a transaction and moves the schema
one version up; SQLite's `user_version` holds how many have run. Never edit
a released step: add a new one at the end (as simonw/llm does).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _chats_and_messages(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE chats (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            system TEXT,
            options TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL,
            updated REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
            content TEXT NOT NULL,
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX messages_by_chat ON messages (chat_id, id)")


def _thinking_and_stats(db: sqlite3.Connection) -> None:
    """Reasoning shown apart from the answer, and each answer's speed (TTFT, tokens/s)."""
    db.execute("ALTER TABLE messages ADD COLUMN thinking TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN stats TEXT NOT NULL DEFAULT '{}'")
    db.execute("CREATE INDEX chats_by_update ON chats (updated DESC)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _chats_and_messages,
    _thinking_and_stats,
]


def migrate(db: sqlite3.Connection, steps: list[Callable[[sqlite3.Connection], None]]) -> int:
    """Run the steps this database has not run yet, each in its own transaction;
    returns the version it ends at. ValueError if a newer program made it.

    `db` must be in autocommit mode (`isolation_level=None`): SQLite's DDL is
    transactional, but Python's default mode would commit each statement."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(steps):
        raise ValueError(f"schema version {version}, newer than this localllm knows ({len(steps)})")
    for number, step in enumerate(steps[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:  # a step and its version number commit together, or not at all
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return len(steps)
