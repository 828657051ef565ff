"""Loading again, more carefully, after llama.cpp crashed loading a model.

On some CPUs llama.cpp's weight repacking crashes the process (AMX on Sapphire Rapids
and later: llama.cpp issue 20824; AMX instructions where a VM forbids them). A worker
that dies by a signal while it loads (its warm-up decode included: `engine.model.warm_up`)
is started again with repacking off (no extra buffer types), then also without mmap; the
level that worked is remembered for that model on this machine (a small JSON file beside
the logs folder), said in the server's log and shown by `ps`. `LOCALLLM_NO_REPACK=1`
starts every model at the first level.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from localllm.engine.protocol import Load
from localllm.store.atomic import atomic_write
from localllm.workers.runner import Runner, WorkerCrashed

LEVELS = ("", "weight repacking off", "weight repacking and mmap off")
"""What each `LoadSettings.fallback` level changes, as the log and `ps` say it."""

Start = Callable[[Load], Runner]
"""A runner for a load, not yet started."""


class Fallbacks:
    """The level each model loads at on this machine, kept across restarts."""

    def __init__(self, path: Path, forced: int = 0) -> None:
        self.path = path
        self.forced = forced
        self.machine = socket.gethostname()

    def level(self, model: str) -> int:
        return max(self.forced, self._read().get(self._key(model), 0))

    def remember(self, model: str, level: int) -> None:
        known = self._read()
        known[self._key(model)] = level
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(known, indent=1).encode())

    def _key(self, model: str) -> str:
        return f"{self.machine}/{model}"

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}
        )


async def start_runner(
    name: str, digest: str, load: Load, start: Start, known: Fallbacks
) -> Runner:
    """A started runner for `load`, at the remembered level for `digest` (the model's
    weights), or the next when its worker crashes loading; WorkerCrashed after the last."""
    level = max(known.level(digest), load.settings.fallback)
    while True:
        runner = start(at_level(load, level))
        try:
            await runner.start()
        except WorkerCrashed as exc:
            if level + 1 >= len(LEVELS):
                raise
            level += 1
            print(f"localllm: {name}: {exc}; loading it again with {LEVELS[level]} (remembered "
                  "for this model on this machine)", file=sys.stderr, flush=True)  # fmt: skip
            known.remember(digest, level)
            continue
        return runner


def at_level(load: Load, level: int) -> Load:
    """`load` at fallback `level`, its draft model's too (loaded in the same worker on the
    same CPU, the draft crashes as the model does)."""
    draft = load.draft
    if draft is not None:
        draft = replace(draft, settings=replace(draft.settings, fallback=level))
    return replace(load, settings=replace(load.settings, fallback=level), draft=draft)
