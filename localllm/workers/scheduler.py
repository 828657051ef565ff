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
from dataclasses import replace
from pathlib import Path
from typing import Any

from localllm.engine.protocol import Load
from localllm.planner.budget import Budget, less, with_workers
from localllm.planner.placement import placement, workers_pay
from localllm.remote.workers import WorkerState
from localllm.server.settings import ServerSettings
from localllm.store.manifests import Manifest
from localllm.store.store import Store
from localllm.workers.fallback import Fallbacks, start_runner
from localllm.workers.held import LOAD_OPTIONS, Busy, LoadKey, Slot, Tally, gpu_of_slot, load_key
from localllm.workers.loading import (
    DoesNotFit,
    Planned,
    machine_budget,
    on_workers,
    plan_load,
    sampling_in_graph,
    with_prompt_cache,
)
from localllm.workers.replicas import (
    gpu_of,
    least_loaded,
    pinned,
    replica_tip,
    single_gpu_budgets,
)
from localllm.workers.runner import Runner, RunnerError
from localllm.workers.turns import Turns

Planner = Callable[[Manifest, Store, Budget, "int | None", dict[str, Any], int, bool], Planned]


RunnerFactory = Callable[[str, Load, Path, Callable[[Runner], None]], Runner]
"""(model name, what to load, its log, called when it dies) -> a runner not yet started."""
RELOAD_WAIT_S = 60.0
"""How long a request waits for a model loaded with other settings to go idle."""


class Scheduler:
    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        log_dir: Path,
        budget: Callable[[], Budget] | None = None,
        planner: Planner = plan_load,
        runner_factory: RunnerFactory = Runner,
    ) -> None:
        """`budget`, `planner` and `runner_factory` are given by tests (a recorded
        machine, plans without files, runners without llama.cpp), as Ollama's
        `sched_test.go` gives its scheduler `newServerFn`."""
        self.settings = settings
        self.store = store
        self.log_dir = log_dir
        self._budget_fn = budget
        self._budget: Budget | None = None
        self._planner = planner
        self._runner_factory = runner_factory
        self.fallbacks = Fallbacks(log_dir.parent / "fallbacks.json", int(settings.no_repack))
        """How carefully each model loads on this machine (`workers.fallback`)."""
        self.slots: dict[str, Slot] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.copies: dict[str, list[Slot]] = {}
        """A model's copies beyond the first, one per GPU (`workers.replicas`)."""
        self.workers: dict[str, WorkerState] = {}
        """What each RPC worker answered when last asked (at a load): `ps` shows it."""
        self._tipped: set[str] = set()
        """Models whose queue already had the replicas suggestion logged."""
        self.reloading: dict[str, int] = {}
        """Requests waiting for a model to reload with their settings (`ps` shows it)."""
        self.reload_wait_s = RELOAD_WAIT_S
        self.tally = Tally()
        self._turns: dict[Runner, Turns] = {}

    # --- admission ----------------------------------------------------------------------

    async def acquire(self, manifest: Manifest, options: dict[str, Any], who: str = "") -> Runner:
        """The runner for `manifest`, with one more request admitted; loads it if needed.
        When every slot is busy, the request waits its client's turn (`who`: its key or
        address; `workers.turns`). Pair every call with `release`."""
        key = load_key(manifest, options)
        slot = await self._loaded(manifest, key, options)
        runner = least_loaded(
            [slot.runner, *(c.runner for c in self.copies.get(manifest.name, ()))]
        )
        waiting = runner.in_flight - runner.parallel
        if waiting >= self.settings.max_queue:
            raise Busy(
                f"model {manifest.name!r} has {waiting} requests waiting "
                f"(LOCALLLM_MAX_QUEUE={self.settings.max_queue}); try again shortly"
            )
        runner.in_flight += 1
        try:
            turns = self.turns_of(runner)
            await turns.take(who if self.settings.fair_queues else "", self.settings.queue_wait_s,
                             manifest.name)  # fmt: skip
        except BaseException:
            runner.in_flight -= 1
            self._changed.set()
            raise
        tip = self.replica_tip(manifest.name)
        if tip and manifest.name not in self._tipped:
            self._tipped.add(manifest.name)
            print(f"localllm: {manifest.name}: {tip}", file=sys.stderr)
        runner.unload_when_idle = False  # this request's keep_alive decides from now
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None
        runner.expires_at = None
        return runner

    def replica_tip(self, name: str) -> str | None:
        """The suggestion of more copies when `name`'s requests queue (`replicas.replica_tip`)."""
        slot = self.slots.get(name)
        if slot is None or self._budget is None:
            return None
        waiting = slot.runner.in_flight - slot.runner.parallel
        left = less(self._budget, (s.estimate for s in self.all_slots()))
        return replica_tip(slot.estimate, waiting, self.settings.replicas, left)

    def release(self, runner: Runner, keep_alive_s: float | None) -> None:
        """One request of `runner` ended; it stays loaded `keep_alive_s` once idle (a
        model's copies go with its first: the model stays while any copy works)."""
        runner.in_flight -= 1
        if (turns := self._turns.get(runner)) is not None:  # gone with an unloaded model
            turns.give()
        runner.last_used = time.monotonic()
        first = self.slots.get(runner.name)
        if first is not None and first.runner is not runner and not runner.dead:
            runner = first.runner  # a copy: the model's lifetime is its first copy's
            runner.last_used = time.monotonic()
        if self.in_flight(runner.name) > 0 or runner.dead:
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
        if slot is not None and slot.runner is runner and self.in_flight(runner.name) == 0:
            self.unload(runner.name)

    def turns_of(self, runner: Runner) -> Turns:
        """The turns of `runner`'s slots (made at its first request)."""
        if runner not in self._turns:
            self._turns[runner] = Turns(runner.parallel)
        return self._turns[runner]

    def _drop_turns(self, runner: Runner, why: str) -> None:
        turns = self._turns.pop(runner, None)
        if turns is not None:
            turns.close(RunnerError(why))

    def in_flight(self, name: str) -> int:
        """Requests admitted to every copy of model `name`."""
        first = self.slots.get(name)
        copies = sum(c.runner.in_flight for c in self.copies.get(name, ()))
        return copies + (first.runner.in_flight if first is not None else 0)

    def all_slots(self) -> list[Slot]:
        """Every loaded copy of every model, each model's first copy first."""
        return [c for name, s in self.slots.items() for c in (s, *self.copies.get(name, ()))]

    # --- loading and unloading -----------------------------------------------------------

    async def budget(self) -> Budget:
        """The whole machine's budget, measured once (the first load or the first ask)."""
        if self._budget is None:
            self._budget = await asyncio.to_thread(self._budget_fn or machine_budget)
        return self._budget

    async def _load(self, manifest: Manifest, key: LoadKey, options: dict[str, Any]) -> Slot:
        budget = await self.budget()
        n_ctx = options.get("num_ctx") or manifest.parameters.get("num_ctx")
        overrides = {k: v for k, v in options.items() if k in LOAD_OPTIONS[1:]}
        if self.settings.kv_cache_type:
            overrides["kv_cache_type"] = self.settings.kv_cache_type
        while True:
            full = self.settings.max_loaded and len(self.slots) >= self.settings.max_loaded
            try:
                if full:
                    raise DoesNotFit(
                        f"LOCALLLM_MAX_LOADED_MODELS={self.settings.max_loaded} reached"
                    )
                left = less(budget, (s.estimate for s in self.all_slots()))
                remote = await self._free_workers()
                if remote:
                    planned, left = await self._plan_with(remote, manifest, left, n_ctx,
                                                          overrides)  # fmt: skip
                else:
                    planned = await asyncio.to_thread(self._plan, manifest, left, n_ctx, overrides)
                if self.settings.replicas > 1 and not planned.load.settings.workers:
                    planned, left = await self._on_one_gpu(planned, left, manifest, n_ctx,
                                                           overrides)  # fmt: skip
                planned = self._sampling(planned)
                break
            except DoesNotFit:
                idle = [s for s in self.slots.values() if s.runner.in_flight == 0]
                if idle:
                    victim = min(idle, key=lambda s: s.runner.last_used)
                    self.unload(victim.runner.name)
                    self.tally.evictions += 1
                    continue
                if not self.slots:
                    raise
                self._changed.clear()
                await self._changed.wait()  # a busy model will go idle
        log = self.log_dir / "runners" / f"{_safe(manifest.name)}.log"
        cache = self.settings.prompt_cache_dir, self.settings.prompt_cache_bytes
        load = with_prompt_cache(planned.load, manifest, *cache)
        runner = await start_runner(
            manifest.name, manifest.model.digest, load,
            lambda load: self._runner_factory(manifest.name, load, log, self._on_death),
            self.fallbacks,
        )  # fmt: skip
        placed = tuple(placement(planned.option.estimate, left))
        slot = Slot(runner, key, planned.option.estimate, manifest, placed)
        self.slots[manifest.name] = slot
        self.tally.loads += 1
        if gpu_of(planned) is not None:
            await self._load_copies(slot, budget, n_ctx, overrides)
        return slot

    def _plan(
        self,
        manifest: Manifest,
        budget: Budget,
        n_ctx: Any,
        overrides: dict[str, Any],
        trial: bool = True,
    ) -> Planned:
        return self._planner(
            manifest, self.store, budget, n_ctx, overrides, self.settings.num_parallel, trial
        )

    async def _plan_with(
        self,
        remote: list[WorkerState],
        manifest: Manifest,
        left: Budget,
        n_ctx: Any,
        overrides: dict[str, Any],
    ) -> tuple[Planned, Budget]:
        """The load across the free workers where it pays (`workers_pay`), else the load
        on this machine alone; with the budget it was planned on."""
        spread_budget = with_workers(left, [d for w in remote for d in w.devices])
        try:  # a trial load would not see the workers' devices: formulas only
            spread: Planned | None = await asyncio.to_thread(
                self._plan, manifest, spread_budget, n_ctx, overrides, False
            )
        except DoesNotFit:
            spread = None
        try:
            here: Planned | None = await asyncio.to_thread(
                self._plan, manifest, left, n_ctx, overrides
            )
        except DoesNotFit:
            if spread is None:
                raise
            here = None
        if spread is None:
            assert here is not None
            return here, left
        why = workers_pay(here.option if here else None, spread.option)
        if here is not None and (why is None or spread.load.settings.n_gpu_layers <= 0):
            return here, left
        print(f"localllm: {manifest.name} goes across the workers: {why}", file=sys.stderr)
        return on_workers(spread, spread_budget), spread_budget

    def _sampling(self, planned: Planned) -> Planned:
        """`LOCALLLM_BACKEND_SAMPLING` over the planner's choice, when it is not auto."""
        if self.settings.backend_sampling == "auto":
            return planned
        on = self.settings.backend_sampling == "on"
        return replace(planned, load=sampling_in_graph(planned.load, on))

    async def _on_one_gpu(
        self,
        planned: Planned,
        left: Budget,
        manifest: Manifest,
        n_ctx: Any,
        overrides: dict[str, Any],
    ) -> tuple[Planned, Budget]:
        """With replicas asked for: the model on the roomiest single GPU where it fits
        whole (its copies take the others), else the plan across GPUs as it was."""
        for one in single_gpu_budgets(left):
            try:
                alone = await asyncio.to_thread(self._plan, manifest, one, n_ctx, overrides)
            except DoesNotFit:
                continue
            fits = pinned(alone, one)
            if fits is not None:
                return fits, one
        return planned, left

    async def _load_copies(
        self, first: Slot, budget: Budget, n_ctx: Any, overrides: dict[str, Any]
    ) -> None:
        """Up to `replicas - 1` more copies of `first`'s model, each on a GPU of its own
        where it fits whole; a copy that does not fit or load is left out (said why)."""
        name = first.manifest.name
        copies = self.copies.setdefault(name, [])
        taken = [gpu_of_slot(first)]
        while len(copies) + 1 < self.settings.replicas:
            left = less(budget, (s.estimate for s in self.all_slots()))
            placed = None
            for one in single_gpu_budgets(left, [t for t in taken if t is not None]):
                try:
                    alone = await asyncio.to_thread(
                        self._plan, first.manifest, one, n_ctx, overrides
                    )
                except DoesNotFit:
                    continue
                placed = pinned(self._sampling(alone), one)
                if placed is not None:
                    break
            if placed is None:
                print(f"localllm: {name}: no other GPU holds a whole copy; "
                      f"{len(copies) + 1} loaded", file=sys.stderr, flush=True)  # fmt: skip
                return
            log = self.log_dir / "runners" / f"{_safe(name)}.{len(copies) + 1}.log"
            runner = self._runner_factory(name, placed.load, log, self._on_death)
            try:
                await runner.start()
            except RunnerError as exc:
                print(f"localllm: {name}: a copy failed to load: {exc}", file=sys.stderr)
                return
            where = tuple(placement(placed.option.estimate, budget))
            copies.append(Slot(runner, first.key, placed.option.estimate, first.manifest, where))
            taken.append(gpu_of(placed))

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

    async def _loaded(self, manifest: Manifest, key: LoadKey, options: dict[str, Any]) -> Slot:
        """`manifest` loaded with `key`'s settings. A model loaded with other settings is
        reloaded once its requests have ended; that wait holds no lock (other models
        load meanwhile) and lasts at most `reload_wait_s`, then Busy (503)."""
        name = manifest.name
        deadline = time.monotonic() + self.reload_wait_s
        while True:
            slot = self.slots.get(name)
            if slot is not None and slot.key == key and not slot.runner.dead:
                return slot
            if slot is not None and not slot.runner.dead and self.in_flight(name) > 0:
                await self._wait_idle(slot, deadline)
                continue
            async with self._load_lock:
                slot = self.slots.get(name)
                if slot is not None and (slot.key != key or slot.runner.dead):
                    if not slot.runner.dead and self.in_flight(name) > 0:
                        continue  # requests came in meanwhile: wait again, without the lock
                    self.unload(name)
                    slot = None
                if slot is None:
                    slot = await self._load(manifest, key, options)
                return slot

    async def _wait_idle(self, slot: Slot, deadline: float) -> None:
        """Until `slot`'s model has no request in flight; Busy past `deadline`."""
        name = slot.manifest.name
        self.reloading[name] = self.reloading.get(name, 0) + 1
        try:
            while self.in_flight(name) > 0 and not slot.runner.dead:
                self._changed.clear()
                left = deadline - time.monotonic()
                try:
                    await asyncio.wait_for(self._changed.wait(), max(left, 0))
                except TimeoutError:
                    raise Busy(
                        f"model {name!r} is loaded with other settings (num_ctx, num_batch, "
                        f"num_thread or num_gpu) and still busy with {self.in_flight(name)} "
                        f"requests after {self.reload_wait_s:g} s; it reloads once they end: "
                        "try again shortly"
                    ) from None
        finally:
            self.reloading[name] -= 1
            if not self.reloading[name]:
                del self.reloading[name]

    def unload_when_idle(self, name: str) -> bool:
        """Unload `name` once its requests have ended (at once if it has none), as
        `keep_alive: 0` and `stop` ask: a stream in progress is never cut off for it.
        False if it is not loaded."""
        slot = self.slots.get(name)
        if slot is None:
            return False
        if self.in_flight(name) == 0:
            return self.unload(name)
        slot.runner.unload_when_idle = True
        return True

    def unload(self, name: str) -> bool:
        """Unload `name` now: requests in flight end with an error."""
        slot = self.slots.pop(name, None)
        if slot is None:
            return False
        slot.runner.stop()
        self._drop_turns(slot.runner, f"model {name!r} was unloaded while the request waited")
        for copy in self.copies.pop(name, []):
            copy.runner.stop()
            self._drop_turns(copy.runner, f"model {name!r} was unloaded while it waited")
        self._changed.set()
        return True

    def _on_death(self, runner: Runner) -> None:
        self.tally.deaths += 1
        slot = self.slots.get(runner.name)
        if slot is not None and slot.runner is runner:
            self.unload(runner.name)  # its copies go with it; the next request reloads
        copies = self.copies.get(runner.name, [])
        copies[:] = [c for c in copies if c.runner is not runner]
        self._drop_turns(runner, f"the worker of {runner.name!r} died while the request waited")
        self._changed.set()

    def abort_all(self, message: str) -> None:
        for slot in self.all_slots():
            slot.runner.abort_all(message)

    def shutdown(self) -> None:
        for name in list(self.slots):
            self.unload(name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


__all__ = ["Busy", "DoesNotFit", "RunnerError", "Scheduler", "Slot", "gpu_of_slot"]
