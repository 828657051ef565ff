"""A prompt cache that survives the worker: long prefixes' KV state on disk.

A slot keeps the tokens of its last request so that the next one starting with them
(a chat's next turn, an agent's tools, a document) decodes only what is new; that
cache used to die with the worker. Now, when the worker ends (its model unloaded or
the server stopping), each slot holding at least `MIN_TOKENS` is written with
llama.cpp's sequence state (`llama_state_seq_save_file`: the cells and their tokens)
to the model's folder, which the server names by the model's digest and KV cache
type. When a request's prompt shares less than `MIN_TOKENS` with the slot it gets,
the saved prefix sharing the most with it is loaded into that slot first, and the
usual reuse cuts it back to what they share. The folders together stay under a size
(`LOCALLLM_PROMPT_CACHE`, GiB): the least recently used files go first. A worker
writes at most `EXIT_BYTES` as it ends, its most recently used slots first. Slots with
images or with adapters other than the model's own are not saved.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from pathlib import Path

import llama_cpp

from localllm.engine.model import LlamaModel
from localllm.engine.slots import Slot
from localllm.engine.tokenbatch import common_prefix

MIN_TOKENS = 256
"""The shortest prefix worth a file (shorter ones decode in about the time of a read)."""
EXIT_BYTES = 1 << 30
"""The most a worker writes as it ends: its memory is free only once it has exited."""


class PromptCache:
    def __init__(self, folder: Path, limit_bytes: int) -> None:
        self.folder = folder
        self.limit_bytes = limit_bytes
        self._saved: dict[Path, list[int]] = {}
        for index in sorted(folder.glob("*.tokens.json")) if folder.is_dir() else ():
            try:
                tokens = json.loads(index.read_text())
            except (OSError, ValueError):
                continue
            state = index.with_name(index.name.removesuffix(".tokens.json") + ".state")
            if isinstance(tokens, list) and state.exists():
                self._saved[state] = [int(t) for t in tokens]

    def restore(self, model: LlamaModel, slot: Slot, tokens: list[int]) -> int:
        """Load the saved prefix sharing the most with `tokens` (at least `MIN_TOKENS`)
        into `slot`, unless the slot already shares that much; how many tokens it loaded
        (0: none)."""
        best, shared = None, max(MIN_TOKENS - 1, common_prefix(slot.cached, tokens))
        for path, saved in self._saved.items():
            n = common_prefix(saved, tokens)
            if n > shared:
                best, shared = path, n
        if best is None:
            return 0
        saved = self._saved[best]
        llama_cpp.llama_memory_seq_rm(model.memory, slot.seq, -1, -1)
        out = (llama_cpp.llama_token * len(saved))()
        count = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(
            model.ctx, str(best).encode(), slot.seq, out, len(saved), ctypes.byref(count)
        )
        if not read or count.value != len(saved):
            llama_cpp.llama_memory_seq_rm(model.memory, slot.seq, -1, -1)
            slot.cached, slot.images = [], []
            return 0
        slot.cached, slot.images = list(out[: count.value]), []
        os.utime(best)  # recently used: the last to go when the cache is over its size
        return len(slot.cached)

    def save(self, model: LlamaModel, slots: list[Slot]) -> int:
        """Write the slots' prefixes worth keeping, the most recently used first and at
        most `EXIT_BYTES` of them (the worker's memory goes back only once it exits);
        how many were written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        written, room = 0, min(EXIT_BYTES, self.limit_bytes)
        for slot in sorted(slots, key=lambda s: -s.last_used):
            tokens = slot.cached
            if len(tokens) < MIN_TOKENS or slot.images or slot.lora != model.default_lora:
                continue
            size = int(llama_cpp.llama_state_seq_get_size(model.ctx, slot.seq))
            if size > room:
                continue
            room -= size
            name = hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:32]
            state = self.folder / f"{name}.state"
            if state in self._saved:
                os.utime(state)
                continue
            array = (llama_cpp.llama_token * len(tokens))(*tokens)
            partial = state.with_suffix(".partial")
            if not llama_cpp.llama_state_seq_save_file(
                model.ctx, str(partial).encode(), slot.seq, array, len(tokens)
            ):
                partial.unlink(missing_ok=True)
                continue
            state.with_name(f"{name}.tokens.json").write_text(json.dumps(tokens))
            partial.replace(state)  # the state last: a file is whole or not there
            self._saved[state] = list(tokens)
            written += 1
        prune(self.folder.parent, self.limit_bytes)
        return written


def prune(root: Path, limit_bytes: int) -> None:
    """Every model's saved prefixes under `root` within `limit_bytes`, the least recently
    used removed first."""
    states = [(p.stat().st_mtime, p) for p in root.glob("*/*.state")]
    total = sum(p.stat().st_size for _, p in states)
    for _, path in sorted(states):
        if total <= limit_bytes:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        path.with_name(path.name.removesuffix(".state") + ".tokens.json").unlink(missing_ok=True)
