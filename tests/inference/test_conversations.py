"""Kept responses: a conversation round trip, expiry, the size bound, ids as paths."""

from __future__ import annotations

import os
import time
from pathlib import Path

from localllm.inference.conversations import Conversations
from localllm.inference.request import CallIn, ImageIn, Message, Text

RID = "resp_" + "ab" * 12
TURNS = (
    Message("user", (Text("look"), ImageIn("input.0.content.1", b"\x89PNG"))),
    Message("assistant", (), "hm", (CallIn("f", {"x": [1, 2]}, "call_1"),)),
    Message("tool", (Text("done"),), tool_call_id="call_1", name="f"),
)


def test_a_conversation_comes_back_as_it_was_kept(tmp_path: Path) -> None:
    kept = Conversations(tmp_path)
    kept.put(RID, TURNS, {"id": RID, "output": []})
    back = kept.get(RID)
    assert back is not None and back.messages == TURNS and back.response["id"] == RID
    assert kept.delete(RID) and kept.get(RID) is None and not kept.delete(RID)


def test_expired_and_oldest_beyond_the_bound_are_gone(tmp_path: Path) -> None:
    kept = Conversations(tmp_path, ttl_s=60)
    kept.put(RID, TURNS, {})
    old = time.time() - 120
    os.utime(tmp_path / f"{RID}.json", (old, old))
    assert kept.get(RID) is None
    small = Conversations(tmp_path, max_bytes=1)
    small.put("resp_" + "cd" * 12, TURNS, {})
    assert list(tmp_path.iterdir()) == []  # the bound holds even for the newest


def test_an_id_of_another_shape_never_becomes_a_path(tmp_path: Path) -> None:
    kept = Conversations(tmp_path / "r")
    for rid in ("../escape", "resp_../../x", "resp_" + "g" * 24, ""):
        kept.put(rid, TURNS, {})
        assert kept.get(rid) is None and not kept.delete(rid)
    assert not (tmp_path / "r").exists() and not (tmp_path / "escape.json").exists()
