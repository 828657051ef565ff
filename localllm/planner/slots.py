"""How many requests a loaded model serves at once (its parallel slots).

Each slot is a llama.cpp sequence with its own KV cache of the planned
context, so four slots cost four caches. Concurrent requests then decode in
one batch: on a GPU, where decode is memory-bound, that multiplies
throughput; on a CPU it still lets several users progress together instead
of waiting in line. Slots never cost the single user anything: they are
added only when they fit beside the plan's context and GPU layers.
"""

from __future__ import annotations

from dataclasses import replace

from localllm.planner.budget import Budget
from localllm.planner.memory import estimate
from localllm.planner.plan import Fit, Option, fits, gpu_targets

AUTO_SLOTS = (4, 2)
GPU_SLOTS = (64, 32, 16, 8, 4, 2)
"""A model wholly on GPUs: decode there is memory-bound, so a step of 64 streams costs
little more than one of 4 (llama-batched-bench on an H200: 12k tokens/s at 64 streams,
3.6k at 8, for a 1B model)."""
KV_SHARE = 0.5
"""Automatic slots' caches take at most this share of a GPU's usable memory, leaving
the rest for the next model."""


def with_slots(option: Option, budget: Budget, wanted: int = 0) -> Option:
    """`option` with the most slots that fit: `wanted` or fewer, or with `wanted` 0
    the first of `GPU_SLOTS` (a model wholly on GPUs, its caches within `KV_SHARE`) or
    `AUTO_SLOTS` that fits; one slot when none do."""
    if option.fit is Fit.NONE or option.settings.n_seq_max > 1:
        return option
    on_gpu = wanted == 0 and option.fit is Fit.FULL_GPU
    choices = range(wanted, 1, -1) if wanted > 0 else GPU_SLOTS if on_gpu else AUTO_SLOTS
    base = option.settings
    targets = gpu_targets(budget)
    usable = {f"GPU{g.index}": g.usable for g in budget.gpus}
    for n in choices:
        settings = replace(base, n_seq_max=n, n_ctx=base.n_ctx * n)
        e = estimate(option.candidate.model, settings, targets, budget.repack)
        if e.gpu_layers != option.estimate.gpu_layers or not fits(e, budget):
            continue
        if on_gpu and any(use.kv > KV_SHARE * usable[use.device] for use in e.gpus):
            continue
        return replace(option, settings=settings, estimate=e)
    return option
