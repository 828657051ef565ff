"""A sliding-window model's cache kept full-size where the budget has room for it.

llama.cpp keeps a sliding-window layer's cache at the window (plus a batch) and
reuses the cells that fell out of it, so a sequence cannot be cut back to an
earlier point. Speculative decoding cuts back every rejected guess, and a chat's
next turn cuts back to the prefix it shares with the last. With `swa_full` those
layers keep every cell, like any layer; the planner asks for it when the plan still
fits with it (the same quantization, layers and context), else keeps the window
cache, and the model then neither guesses ahead nor reuses a cut prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from localllm.gguf.info import ModelInfo
from localllm.planner.budget import Budget
from localllm.planner.memory import MemoryEstimate
from localllm.planner.plan import Option, fits
from localllm.planner.settings import LoadSettings


def with_full_swa(
    option: Option,
    model: ModelInfo,
    budget: Budget,
    estimate: Callable[[LoadSettings], MemoryEstimate],
) -> Option:
    """`option` with a full-size sliding-window cache when the model has such layers and
    `budget` holds it (`estimate`: the memory of the model loaded with given settings)."""
    if not model.sliding_window or option.settings.swa_full:
        return option
    settings = replace(option.settings, swa_full=True)
    memory = estimate(settings)
    if not fits(memory, budget):
        return option
    return replace(option, settings=settings, estimate=memory)
