"""The engine's slots: which one a request takes, and what of its cache it keeps.

A slot is one llama.cpp sequence. It keeps its tokens after a request ends, so the
next request whose prompt starts with them (a chat's next turn, the same system
prompt) decodes only what is new. A cache that cannot be cut back (recurrent state,
window-sized sliding-window layers) is kept only when the new prompt extends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from localllm.engine.job import Job
from localllm.engine.tokenbatch import common_prefix

MIN_SHARE = 0.1
"""The share of a prompt a slot's cache must hold for the request to take that slot."""


@dataclass
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)
    """The tokens whose keys and values this sequence holds, in order."""
    job: Job | None = None
    last_used: float = 0.0


def choose(free: list[Slot], tokens: list[int]) -> Slot:
    """The free slot holding the longest start of `tokens`, when that is a real share
    of the prompt (as llama-server's slot similarity); else the least recently used,
    so a new conversation does not overwrite another one's cache."""

    def shared(slot: Slot) -> int:
        n = common_prefix(slot.cached, tokens)
        return n if n > 1 and n >= MIN_SHARE * len(tokens) else 0

    return max(free, key=lambda s: (shared(s), -s.last_used))


def reuse(slot: Slot, tokens: list[int], memory: Any, can_cut: bool) -> int:
    """Keep the slot's prefix shared with `tokens` (in llama.cpp's `memory` too); returns
    how many tokens it covers."""
    common = min(common_prefix(slot.cached, tokens), len(tokens) - 1)  # last one: logits
    if common < len(slot.cached) and (
        not can_cut or not llama_cpp.llama_memory_seq_rm(memory, slot.seq, common, -1)
    ):
        common = 0
    if common == 0:
        llama_cpp.llama_memory_seq_rm(memory, slot.seq, -1, -1)
    del slot.cached[common:]
    return common
