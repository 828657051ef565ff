"""The chat history on a real SQLite file: turns, listing, edits, migrations, bad files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from localllm.history import ChatStore, HistoryError, Message, to_markdown
from localllm.history.migrations import MIGRATIONS, migrate
from localllm.paths import resolve_paths


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    ticks = count(1000)
    with ChatStore(tmp_path / "data" / "history.db", clock=lambda: float(next(ticks))) as s:
        yield s


def test_a_turn_is_saved_and_the_chat_takes_its_title(store: ChatStore) -> None:
    chat = store.create("llama3.2", system="Be brief.", options={"temperature": 0.2})
    store.add(
        chat.id,
        Message("user", "  How do   I reverse a list in Python?\n"),
        Message("assistant", "Use `xs[::-1]`.", thinking="Slicing.", stats={"ttft_s": 0.3}),
    )
    loaded = store.load(chat.id)
    assert loaded.title == "How do I reverse a list in Python?"
    assert [m.role for m in loaded.messages] == ["user", "assistant"]
    answer = loaded.messages[1]
    assert answer.thinking == "Slicing." and answer.stats == {"ttft_s": 0.3}
    assert loaded.system == "Be brief." and loaded.options == {"temperature": 0.2}
    assert loaded.updated > chat.updated


def test_chats_list_most_recent_first_with_counts(store: ChatStore) -> None:
    a = store.create("m1")
    b = store.create("m2")
    store.add(a.id, Message("user", "later"), Message("assistant", "yes"))
    listed = store.chats()
    assert [(c.id, c.messages) for c in listed] == [(a.id, 2), (b.id, 0)]
    assert store.chats(limit=1, offset=1)[0].id == b.id


def test_rename_settings_clear_and_delete(store: ChatStore) -> None:
    chat = store.create("m")
    store.add(chat.id, Message("user", "x" * 200))
    assert store.load(chat.id).title.endswith("…") and len(store.load(chat.id).title) == 60
    store.rename(chat.id, "  Lists  ")
    store.set_model(chat.id, "other")
    store.set_system(chat.id, "New system")
    store.set_options(chat.id, {"top_k": 5})
    store.clear(chat.id)
    loaded = store.load(chat.id)
    assert (loaded.title, loaded.model, loaded.system, loaded.options) == (
        "Lists", "other", "New system", {"top_k": 5})  # fmt: skip
    assert loaded.messages == ()
    store.delete(chat.id)
    with pytest.raises(HistoryError, match="no chat"):
        store.load(chat.id)
    with pytest.raises(HistoryError, match="no chat"):
        store.rename(chat.id, "gone")


def test_a_long_chat_loads_in_one_go(store: ChatStore) -> None:
    chat = store.create("m")
    for i in range(300):
        store.add(chat.id, Message("user", f"q{i}"), Message("assistant", f"a{i}"))
    loaded = store.load(chat.id)
    assert len(loaded.messages) == 600 and loaded.messages[-1].content == "a299"


def test_markdown_export(store: ChatStore) -> None:
    chat = store.create("llama3.2", system="Be brief.")
    store.add(chat.id, Message("user", "Hi"), Message("assistant", "Hello!", thinking="Greet."))
    text = to_markdown(store.load(chat.id))
    assert text.startswith("# Hi\n")
    assert "## System\n\nBe brief." in text and "## You\n\nHi" in text
    assert "<details><summary>Thinking</summary>\n\nGreet." in text
    assert text.endswith("## Assistant\n\n<details><summary>Thinking</summary>\n\nGreet.\n\n"
                         "</details>\n\nHello!\n")  # fmt: skip


def test_a_first_version_database_is_upgraded_keeping_its_chats(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1])
    db.execute("INSERT INTO chats (title, model, created, updated) VALUES ('old', 'm', 1, 1)")
    db.execute("INSERT INTO messages (chat_id, role, content, created) VALUES (1, 'user', 'q', 1)")
    db.close()
    with ChatStore(path) as store:
        [message] = store.load(1).messages
        assert message.content == "q" and message.stats == {} and message.thinking is None
        version = store._db.execute("PRAGMA user_version").fetchone()[0]
        assert version == len(MIGRATIONS)


def test_a_failing_step_leaves_the_previous_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "h.db", isolation_level=None)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        migrate(db, [*MIGRATIONS, broken])
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in names


def test_bad_files_are_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="move the file aside"):
        ChatStore(garbage)
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(HistoryError, match="newer than this localllm"):
        ChatStore(newer)


def test_the_history_lives_in_the_data_folder(tmp_path: Path) -> None:
    paths = resolve_paths({"LOCALLLM_HOME": str(tmp_path)})
    with ChatStore(paths.history_file) as store:
        store.create("m")
    assert paths.history_file.parent == paths.data_dir and paths.history_file.exists()


def test_a_failed_write_keeps_the_last_complete_turn(store: ChatStore) -> None:
    chat = store.create("m")
    store.add(chat.id, Message("user", "one"), Message("assistant", "two"))
    with pytest.raises(HistoryError):
        store.add(chat.id, Message("user", "three"), Message("robot", "bad role"))
    assert [m.content for m in store.load(chat.id).messages] == ["one", "two"]
