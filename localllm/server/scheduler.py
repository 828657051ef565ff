"""Which models are loaded, in which worker, for how long; and who waits.

- A model loads on first use, planned against what the loaded ones leave
  free. When it does not fit, the least recently used idle model is
  unloaded and the plan is tried again; when every loaded model is busy,
  the load waits for one to go idle.
- After each request the model stays for its `keep_alive` (Ollama's rules: 0
  unloads at once, negative keeps it forever), then its worker ends.
- Each model runs as many requests at once as it has slots (the planner's
  `n_seq_max`, decoded together by the worker) and keeps `max_queue` more
  waiting; past that, `Busy` (503 with Retry-After).
- A request asking for another context size (num_ctx) or other load options
  reloads the model once it is idle, as Ollama does.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
from localllm.planner.budget import Budget, less, with_workers
from localllm.planner.memory import MemoryEstimate
from localllm.planner.placement import Placed, placement
from localllm.remote.workers import WorkerState
from localllm.server.loading import DoesNotFit, Planned, plan_load
from localllm.server.runner import Runner, RunnerError
from localllm.server.settings import ServerSettings
from localllm.store.manifests import Manifest
from localllm.store.store import Store

LOAD_OPTIONS = ("num_ctx", "num_gpu", "num_thread", "num_batch")
Planner = Callable[[Manifest, Store, Budget, "int | None", dict[str, Any], int, bool], Planned]


class Busy(LocalLLMError):
    """Too many requests are waiting for this model."""

    retry_after_s = 5


@dataclass(frozen=True)
class LoadKey:
    digests: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]


@dataclass
class Slot:
    runner: Runner
    key: LoadKey
    estimate: MemoryEstimate
    manifest: Manifest
    placement: tuple[Placed, ...] = ()
    """Where the model is, host by host (`ps` shows it)."""


class Scheduler:
    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        log_dir: Path,
        budget: Callable[[], Budget] | None = None,
        planner: Planner = plan_load,
    ) -> None:
        self.settings = settings
        self.store = store
        self.log_dir = log_dir
        self._budget_fn = budget
        self._budget: Budget | None = None
        self._planner = planner
        self.slots: dict[str, Slot] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.workers: dict[str, WorkerState] = {}
        """What each RPC worker answered when last asked (at a load): `ps` shows it."""

    # --- admission ----------------------------------------------------------------------

    async def acquire(self, manifest: Manifest, options: dict[str, Any]) -> Runner:
        """The runner for `manifest`, with one more request admitted; loads it if needed.
        Pair every call with `release`."""
        key = _key(manifest, options)
        slot = self.slots.get(manifest.name)
        if slot is None or slot.key != key or slot.runner.dead:
            async with self._load_lock:
                slot = self.slots.get(manifest.name)
                if slot is not None and (slot.key != key or slot.runner.dead):
                    await self._wait_idle(slot)
                    self.unload(manifest.name)
                    slot = None
                if slot is None:
                    slot = await self._load(manifest, key, options)
        runner = slot.runner
        waiting = runner.in_flight - runner.parallel
        if waiting >= self.settings.max_queue:
            raise Busy(
                f"model {manifest.name!r} has {waiting} requests waiting "
                f"(LOCALLLM_MAX_QUEUE={self.settings.max_queue}); try again shortly"
            )
        runner.in_flight += 1
        runner.unload_when_idle = False  # this request's keep_alive decides from now
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None
        runner.expires_at = None
        return runner

    def release(self, runner: Runner, keep_alive_s: float | None) -> None:
        """One request of `runner` ended; it stays loaded `keep_alive_s` once idle."""
        runner.in_flight -= 1
        runner.last_used = time.monotonic()
        if runner.in_flight > 0 or runner.dead:
            self._changed.set()
            return
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None
        if runner.unload_when_idle or (keep_alive_s is not None and keep_alive_s <= 0):
            self.unload(runner.name)
        elif keep_alive_s is None:
            runner.expires_at = None
        else:
            runner.expires_at = time.time() + keep_alive_s
            loop = asyncio.get_running_loop()
            runner.expiry = loop.call_later(keep_alive_s, self._expire, runner)
        self._changed.set()

    def _expire(self, runner: Runner) -> None:
        slot = self.slots.get(runner.name)
        if slot is not None and slot.runner is runner and runner.in_flight == 0:
            self.unload(runner.name)

    # --- loading and unloading -----------------------------------------------------------

    async def budget(self) -> Budget:
        """The whole machine's budget, measured once (the first load or the first ask)."""
        if self._budget is None:
            self._budget = await asyncio.to_thread(self._budget_fn or _machine_budget)
        return self._budget

    async def _load(self, manifest: Manifest, key: LoadKey, options: dict[str, Any]) -> Slot:
        budget = await self.budget()
        n_ctx = options.get("num_ctx") or manifest.parameters.get("num_ctx")
        overrides = {k: v for k, v in options.items() if k in LOAD_OPTIONS[1:]}
        while True:
            full = self.settings.max_loaded and len(self.slots) >= self.settings.max_loaded
            try:
                if full:
                    raise DoesNotFit(
                        f"LOCALLLM_MAX_LOADED_MODELS={self.settings.max_loaded} reached"
                    )
                left = less(budget, (s.estimate for s in self.slots.values()))
                remote = await self._free_workers()
                if remote:
                    left = with_workers(left, [d for w in remote for d in w.devices])
                planned = await asyncio.to_thread(
                    self._planner,
                    manifest,
                    self.store,
                    left,
                    n_ctx,
                    overrides,
                    self.settings.num_parallel,
                    not remote,  # a trial load would not see the workers' devices
                )
                if remote:
                    planned = _on_workers(planned, left)
                if self.settings.backend_sampling != "auto":
                    on = self.settings.backend_sampling == "on"
                    settings = replace(planned.load.settings, backend_sampling=on)
                    planned = replace(planned, load=replace(planned.load, settings=settings))
                break
            except DoesNotFit:
                idle = [s for s in self.slots.values() if s.runner.in_flight == 0]
                if idle:
                    victim = min(idle, key=lambda s: s.runner.last_used)
                    self.unload(victim.runner.name)
                    continue
                if not self.slots:
                    raise
                self._changed.clear()
                await self._changed.wait()  # a busy model will go idle
        log = self.log_dir / "runners" / f"{_safe(manifest.name)}.log"
        runner = Runner(manifest.name, planned.load, log, self._on_death)
        await runner.start()
        placed = tuple(placement(planned.option.estimate, left))
        slot = Slot(runner, key, planned.option.estimate, manifest, placed)
        self.slots[manifest.name] = slot
        return slot

    async def _free_workers(self) -> list[WorkerState]:
        """The workers that answer and hold no loaded model (a worker serves one client
        at a time); asking them takes a child process each, so only when there are any."""
        held = {e for s in self.slots.values() for e in s.runner.load_request.settings.workers}
        free = [e for e in self.settings.workers if e not in held]
        if not free:
            return []
        from localllm.remote.workers import ask

        states = await asyncio.to_thread(ask, free)
        self.workers.update((s.endpoint, s) for s in states)
        for state in states:
            if not state.up:
                print(f"localllm: RPC worker {state.endpoint}: {state.error}; planning without it",
                      file=sys.stderr, flush=True)  # fmt: skip
        return [s for s in states if s.up]

    def worker_health(self) -> list[dict[str, Any]]:
        """Each configured worker: listening now (a TCP connect, which even a busy
        worker accepts), the model it holds, and what it last answered."""
        from localllm.remote.workers import answers

        holder = {e: s.manifest.name for s in self.slots.values()
                  for e in s.runner.load_request.settings.workers}  # fmt: skip
        out = []
        for endpoint in self.settings.workers:
            last = self.workers.get(endpoint)
            out.append({
                "endpoint": endpoint,
                "listening": answers(endpoint),
                "model": holder.get(endpoint),
                "devices": [d.description if d.description != endpoint else d.name
                            for d in (last.devices if last else ())],
                "error": last.error if last else None,
            })  # fmt: skip
        return out

    async def _wait_idle(self, slot: Slot) -> None:
        while slot.runner.in_flight > 0 and not slot.runner.dead:
            self._changed.clear()
            await self._changed.wait()

    def unload_when_idle(self, name: str) -> bool:
        """Unload `name` once its requests have ended (at once if it has none), as
        `keep_alive: 0` and `stop` ask: a stream in progress is never cut off for it.
        False if it is not loaded."""
        slot = self.slots.get(name)
        if slot is None:
            return False
        if slot.runner.in_flight == 0:
            return self.unload(name)
        slot.runner.unload_when_idle = True
        return True

    def unload(self, name: str) -> bool:
        """Unload `name` now: requests in flight end with an error."""
        slot = self.slots.pop(name, None)
        if slot is None:
            return False
        slot.runner.stop()
        self._changed.set()
        return True

    def _on_death(self, runner: Runner) -> None:
        slot = self.slots.get(runner.name)
        if slot is not None and slot.runner is runner:
            del self.slots[runner.name]
        self._changed.set()

    def abort_all(self, message: str) -> None:
        for slot in self.slots.values():
            slot.runner.abort_all(message)

    def shutdown(self) -> None:
        for name in list(self.slots):
            self.unload(name)


def _on_workers(planned: Planned, budget: Budget) -> Planned:
    """The planned load with the workers whose devices took layers, and the split the
    plan assumed (each device's usable memory, in `budget`'s order)."""
    settings = planned.load.settings
    if settings.n_gpu_layers <= 0:
        return planned  # nothing offloaded: the workers stay free
    devices = [g for g in budget.gpus if g.usable > 0]
    workers = tuple(dict.fromkeys(g.endpoint for g in devices if g.endpoint))
    split = tuple(float(g.usable) for g in devices)
    settings = replace(settings, workers=workers, tensor_split=split)
    return replace(planned, load=replace(planned.load, settings=settings))


def _machine_budget() -> Budget:
    from localllm.planner.machine import this_machine

    return this_machine(quick=True).budget


def _key(manifest: Manifest, options: dict[str, Any]) -> LoadKey:
    digests = tuple(sorted(manifest.digests))
    chosen = {k: options.get(k, manifest.parameters.get(k)) for k in LOAD_OPTIONS}
    return LoadKey(digests, tuple((k, v) for k, v in sorted(chosen.items()) if v is not None))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


__all__ = ["Busy", "DoesNotFit", "RunnerError", "Scheduler", "Slot"]
