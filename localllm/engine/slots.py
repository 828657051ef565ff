"""The engine's slots: which one a request takes, and what of its cache it keeps.

A slot is one llama.cpp sequence. It keeps its tokens after a request ends, so the
next request whose prompt starts with them (a chat's next turn, the same system
prompt) decodes only what is new. A cache that cannot be cut back (recurrent state,
window-sized sliding-window layers) is kept only when the new prompt extends it.
An image is a run of one negative id (`engine.vision`): kept whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection
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
    lora: tuple[tuple[int, float], ...] = ()
    """The adapters its cached tokens were computed with (`engine.lora`)."""
    images: list[tuple[int, int]] = field(default_factory=list)
    """(where in `cached` each image ends, positions it takes minus its tokens): M-RoPE
    models give an image fewer positions than tokens."""

    @property
    def pos(self) -> int:
        """The position of the next token."""
        return len(self.cached) + self.offset(len(self.cached))

    def offset(self, index: int) -> int:
        """Position minus index at token `index`."""
        if not self.images:
            return 0
        return sum(delta for end, delta in self.images if end <= index)


def choose(free: list[Slot], tokens: list[int], running: Collection[int] = ()) -> Slot:
    """The free slot holding the longest start of `tokens`, when that is a real share
    of the prompt (as llama-server's slot similarity). Else, while others run (the
    sequences in `running`), the free slot with the most running neighbours, then the
    least recently used: llama.cpp decodes a step's sequences in micro-batches of
    consecutive sequence ids (`split_equal` in `llama-batch.cpp`, for a cache per
    sequence), one pass of the weights each, so a stream in a slot apart from the others
    costs every stream a pass. Else the least recently used, so a new conversation does
    not overwrite another one's cache."""

    def shared(slot: Slot) -> int:
        n = common_prefix(slot.cached, tokens)
        return n if n > 1 and n >= MIN_SHARE * len(tokens) else 0

    def neighbours(slot: Slot) -> int:
        return (slot.seq - 1 in running) + (slot.seq + 1 in running)

    best = max(free, key=lambda s: (shared(s), -s.last_used))
    if shared(best) or not running:
        return best
    return max(free, key=lambda s: (neighbours(s), -s.last_used))


def reuse(slot: Slot, tokens: list[int], memory: Any, can_cut: bool) -> int:
    """Keep the slot's prefix shared with `tokens` (in llama.cpp's `memory` too); returns
    how many tokens it covers."""
    common = min(common_prefix(slot.cached, tokens), len(tokens) - 1)  # last one: logits
    common = _image_start(tokens, _image_start(slot.cached, common))
    pos = common + slot.offset(common)
    if common < len(slot.cached) and (
        not can_cut or not llama_cpp.llama_memory_seq_rm(memory, slot.seq, pos, -1)
    ):
        common = 0
    if common == 0:
        llama_cpp.llama_memory_seq_rm(memory, slot.seq, -1, -1)
    del slot.cached[common:]
    slot.images = [(end, delta) for end, delta in slot.images if end <= common]
    return common


def _image_start(tokens: list[int], index: int) -> int:
    """`index`, or where the image it falls inside starts."""
    while 0 < index < len(tokens) and tokens[index] < 0 and tokens[index - 1] == tokens[index]:
        index -= 1
    return index


def forget(slot: Slot, memory: Any) -> None:
    """Empty the slot (and its sequence in llama.cpp's `memory`, unless None)."""
    if memory is not None:
        llama_cpp.llama_memory_seq_rm(memory, slot.seq, -1, -1)
    slot.cached, slot.images = [], []


def shift(slot: Slot, memory: Any, add_bos: bool) -> None:
    """Ollama's context shift (only for requests with `shift`, which `Job.accept` lets go
    on at a full slot): drop the older half of the tokens after BOS and `num_keep`,
    move the rest down, and go on."""
    assert slot.job is not None
    keep = min(slot.job.request.num_keep + int(add_bos), len(slot.cached) - 2)
    drop = max((len(slot.cached) - keep) // 2, 1)
    llama_cpp.llama_memory_seq_rm(memory, slot.seq, keep, keep + drop)
    llama_cpp.llama_memory_seq_add(memory, slot.seq, keep + drop, -1, -drop)
    del slot.cached[keep : keep + drop]
    slot.job.shifts += 1
