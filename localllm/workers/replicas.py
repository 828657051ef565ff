"""Copies of one model, one per GPU, behind one name (`LOCALLLM_REPLICAS`).

When a model fits on one GPU, a second GPU serves it better by holding a second copy
than by holding half of one: each copy decodes its own batch at a single GPU's full
speed, with no hop between GPUs per token. The scheduler plans each copy on one GPU
alone (a budget with only that GPU), pins it there (`LoadSettings.devices`), and
sends each request to the copy with the fewest requests per slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from localllm.planner.budget import Budget
from localllm.planner.memory import MemoryEstimate
from localllm.planner.plan import Fit
from localllm.workers.loading import Planned
from localllm.workers.runner import Runner


def single_gpu_budgets(budget: Budget, taken: Sequence[int] = ()) -> list[Budget]:
    """`budget` cut down to each of its local GPUs alone (roomiest first), but those in
    `taken`; none on a machine with fewer than two GPUs."""
    local = [g for g in budget.gpus if g.endpoint is None and g.index not in taken]
    if len([g for g in budget.gpus if g.endpoint is None]) < 2:
        return []
    local.sort(key=lambda g: -g.usable)
    return [replace(budget, gpus=(g,)) for g in local]


def pinned(planned: Planned, budget: Budget) -> Planned | None:
    """The plan pinned to the one GPU of `budget`, or None unless it fits there whole."""
    if planned.option.fit is not Fit.FULL_GPU or len(budget.gpus) != 1:
        return None
    settings = replace(planned.load.settings, devices=(budget.gpus[0].index,))
    return replace(planned, load=replace(planned.load, settings=settings))


def least_loaded(runners: Sequence[Runner]) -> Runner:
    """The live copy with the fewest requests per slot (the first among equals)."""
    live = [r for r in runners if not r.dead] or list(runners)
    return min(live, key=lambda r: r.in_flight / r.parallel)


def gpu_of(planned: Planned) -> int | None:
    devices = planned.load.settings.devices
    return devices[0] if len(devices) == 1 else None


def replica_tip(estimate: MemoryEstimate, waiting: int, replicas: int, left: Budget) -> str | None:
    """What `ps` suggests when a model's requests queue for its slots: a copy per GPU,
    where the model is wholly on this machine's GPUs (split or not), would fit on one
    alone, and copies are not on. `left`: the budget less every loaded model."""
    if waiting <= 0 or replicas > 1 or not estimate.gpus:
        return None
    if estimate.gpu_layers <= estimate.n_layer:
        return None  # partly on the CPU: a copy would not fit on a GPU either
    used = {u.device: u.total for u in estimate.gpus}
    mine = [g for g in left.gpus if f"GPU{g.index}" in used]
    if any(g.endpoint is not None for g in mine):
        return None  # across RPC workers
    need = sum(used.values())
    room = [
        g for g in left.gpus
        if g.endpoint is None and g.usable + used.get(f"GPU{g.index}", 0) >= need
    ]  # fmt: skip
    if len(room) < 2:
        return None
    return (
        f"{waiting} request{'s' * (waiting != 1)} waiting for a slot; the model fits on one "
        f"GPU and {len(room)} GPUs have room for a copy each: LOCALLLM_REPLICAS={len(room)} "
        "would serve them side by side"
    )
