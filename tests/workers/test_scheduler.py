"""The scheduler without llama.cpp: runners from an injected factory that start no
process (as Ollama's `sched_test.go` injects `newServerFn`), plans from the headers
alone. What is tested is the scheduler's own logic: who waits for what."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

from localllm.engine.protocol import Loaded
from localllm.planner.budget import Budget
from localllm.server.settings import ServerSettings
from localllm.store.manifests import Manifest
from localllm.store.names import parse_name
from localllm.store.store import Store
from localllm.workers.loading import Planned, plan_load
from localllm.workers.runner import Runner, WorkerCrashed
from localllm.workers.scheduler import Busy, Scheduler
from tests.live_server import BUDGET, add_model


class QuietRunner(Runner):
    """A runner whose worker is never started: loaded at once, with what was asked."""

    async def start(self) -> Loaded:
        self.loaded = Loaded(self.load_request.settings, 4096, None, 0.0)
        return self.loaded


def headers_only(manifest: Manifest, store: Store, budget: Budget, n_ctx: Any,
                 overrides: dict[str, Any], parallel: int, trial: bool) -> Planned:  # fmt: skip
    return plan_load(manifest, store, budget, n_ctx, overrides, parallel, trial=False)


@pytest.fixture
def scheduler(tmp_path: Path, tiny_files: dict[str, Path]) -> Scheduler:
    store = Store(tmp_path / "models")
    add_model(store, "a", tiny_files["tiny"])
    add_model(store, "b", tiny_files["other"])
    return Scheduler(ServerSettings(), store, tmp_path / "logs", budget=lambda: BUDGET,
                     planner=headers_only, runner_factory=QuietRunner)  # fmt: skip


def model(scheduler: Scheduler, name: str) -> Manifest:
    return scheduler.store.get(parse_name(name))


async def until(condition: Any) -> None:
    """Until `condition()` holds (a minute at most: a hang is a failure, not a stall)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), 60)


def test_a_reload_waits_for_its_model_without_blocking_another(scheduler: Scheduler) -> None:
    async def scenario() -> None:
        a, b = model(scheduler, "a"), model(scheduler, "b")
        busy = await scheduler.acquire(a, {})
        reload = asyncio.create_task(scheduler.acquire(a, {"num_ctx": 512}))
        await until(lambda: scheduler.reloading.get("a:latest") == 1)
        other = await asyncio.wait_for(scheduler.acquire(b, {}), 30)  # not behind the reload
        assert other.name == "b:latest" and not reload.done()
        scheduler.release(busy, None)
        reloaded = await asyncio.wait_for(reload, 30)
        assert reloaded is not busy and busy.dead
        assert reloaded.load_request.settings.n_ctx_seq == 512
        assert scheduler.reloading == {}
        scheduler.shutdown()

    asyncio.run(scenario())


def test_a_reload_that_waits_too_long_is_busy(scheduler: Scheduler) -> None:
    async def scenario() -> None:
        a = model(scheduler, "a")
        busy = await scheduler.acquire(a, {})
        scheduler.reload_wait_s = 0.01
        with pytest.raises(Busy, match="loaded with other settings") as refused:
            await scheduler.acquire(a, {"num_ctx": 512})
        assert refused.value.status == 503 and refused.value.retry_after_s == 5
        assert scheduler.slots["a:latest"].runner is busy and not busy.dead
        scheduler.release(busy, None)
        scheduler.shutdown()

    asyncio.run(scenario())


class RepackCrashRunner(QuietRunner):
    """A runner whose worker crashes loading unless weight repacking is off (as llama.cpp
    does on some AMX CPUs); counts its starts."""

    starts: ClassVar[list[int]] = []
    needs: ClassVar[int] = 1
    """The level a load needs to survive."""

    async def start(self) -> Loaded:
        level = self.load_request.settings.fallback
        RepackCrashRunner.starts.append(level)
        if level < self.needs:
            raise WorkerCrashed(f"model {self.name!r} could not be loaded: killed by SIGSEGV")
        return await super().start()


def crashing_scheduler(tmp_path: Path, store: Store, **settings: Any) -> Scheduler:
    return Scheduler(ServerSettings(**settings), store, tmp_path / "logs",
                     budget=lambda: BUDGET, planner=headers_only,
                     runner_factory=RepackCrashRunner)  # fmt: skip


def test_a_worker_that_crashes_loading_is_loaded_again_without_repacking(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    async def scenario() -> None:
        RepackCrashRunner.starts, RepackCrashRunner.needs = [], 1
        first = crashing_scheduler(tmp_path, scheduler.store)
        runner = await first.acquire(model(first, "a"), {})
        assert runner.load_request.settings.fallback == 1
        assert RepackCrashRunner.starts == [0, 1]
        first.release(runner, None)
        first.shutdown()
        # remembered for this model on this machine: the next server starts there
        again = crashing_scheduler(tmp_path, scheduler.store)
        RepackCrashRunner.starts = []
        await again.acquire(model(again, "a"), {})
        assert RepackCrashRunner.starts == [1]
        again.shutdown()

    asyncio.run(scenario())


def test_no_repack_forces_the_first_level_and_the_last_crash_is_an_error(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    async def scenario() -> None:
        RepackCrashRunner.starts, RepackCrashRunner.needs = [], 1
        forced = crashing_scheduler(tmp_path, scheduler.store, no_repack=True)
        await forced.acquire(model(forced, "b"), {})
        assert RepackCrashRunner.starts == [1]
        forced.shutdown()
        RepackCrashRunner.starts, RepackCrashRunner.needs = [], 9  # crashes at every level
        doomed = crashing_scheduler(tmp_path / "other", scheduler.store)
        with pytest.raises(WorkerCrashed, match="SIGSEGV"):
            await doomed.acquire(model(doomed, "a"), {})
        assert RepackCrashRunner.starts == [0, 1, 2]
        doomed.shutdown()

    asyncio.run(scenario())
