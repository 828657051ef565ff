"""A draft model's memory beside its target's (speculative decoding, `engine.draft`).

The draft is loaded in the target's worker with the same context, slots and batch,
all its layers where the target's output layer runs (the first GPU when the target
is fully offloaded, as llama-server's `-ngld` default does; else the CPU): its
weights, KV cache and compute buffers are planned with the same formulas as any
model's and counted with the target's. A target that no longer fits beside its
draft is planned again in what the draft leaves, at a shorter context if need be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from localllm.gguf.info import ModelInfo
from localllm.planner.budget import Budget, less
from localllm.planner.memory import DeviceUse, MemoryEstimate, estimate
from localllm.planner.plan import Plan, fits, gpu_targets
from localllm.planner.settings import LoadSettings, flash_attention
from localllm.units import format_bytes


def draft_settings(draft: ModelInfo, target: LoadSettings, target_layers: int) -> LoadSettings:
    """The draft's load settings for a target loaded with `target` (of `target_layers`
    layers): the same context, slots and batch; every layer on the GPU when the
    target's are all there, else none; its guesses then picked in its graph
    (`engine.draft`), as the target's tokens are."""
    on_gpu = target.n_gpu_layers > target_layers
    n_gpu_layers = draft.n_layer + 1 if on_gpu else 0
    return replace(
        target,
        n_gpu_layers=n_gpu_layers,
        flash_attn=flash_attention(n_gpu_layers, "f16"),
        type_k="f16",
        type_v="f16",
        workers=(),
        tensor_split=(),
        backend_sampling=on_gpu,
    )


def draft_estimate(draft: ModelInfo, settings: LoadSettings, budget: Budget) -> MemoryEstimate:
    """Bytes per device for the draft loaded with `settings` on `budget`'s first GPU."""
    gpus = gpu_targets(budget)[:1] if settings.n_gpu_layers else ()
    return estimate(draft, settings, gpus, repack=budget.repack)


def combined(a: MemoryEstimate, b: MemoryEstimate) -> MemoryEstimate:
    """Two models' estimates as one: the same devices' uses added up."""
    gpus: dict[str, DeviceUse] = {g.device: g for g in a.gpus}
    for g in b.gpus:
        gpus[g.device] = _add(gpus[g.device], g) if g.device in gpus else g
    return replace(a, host=_add(a.host, b.host), gpus=tuple(gpus.values()))


def without_runtime(memory: MemoryEstimate) -> MemoryEstimate:
    """`memory` less the runtime each device holds once per process (the CUDA context,
    the host's graph metadata): what the draft adds to its target's worker."""
    return replace(
        memory,
        host=replace(memory.host, overhead=0),
        gpus=tuple(replace(g, overhead=0) for g in memory.gpus),
    )


def fits_beside(target: MemoryEstimate, draft: MemoryEstimate, budget: Budget) -> bool:
    return fits(combined(target, draft), budget)


def _add(x: DeviceUse, y: DeviceUse) -> DeviceUse:
    return DeviceUse(
        device=x.device,
        weights=x.weights + y.weights,
        repack=x.repack + y.repack,
        kv=x.kv + y.kv,
        recurrent=x.recurrent + y.recurrent,
        compute=x.compute + y.compute,
        output=x.output + y.output,
        work=x.work + y.work,
        overhead=max(x.overhead, y.overhead),  # one runtime per device for the process
        layers=x.layers,
    )


def plan_with_draft(
    result: Plan, draft: ModelInfo, name: str, replan: Callable[[Budget], Plan]
) -> Plan:
    """`result` with the draft model `draft` (called `name`) beside its choice: the
    target planned again in what the draft leaves when both do not fit (`replan`), the
    choice's estimate counting both, and a note saying what the draft takes."""
    choice = result.choice
    if choice is None:
        return result
    settings = draft_settings(draft, choice.settings, choice.estimate.n_layer)
    memory = draft_estimate(draft, settings, result.budget)
    if not fits_beside(choice.estimate, memory, result.budget):
        result = replace(
            replan(less(result.budget, [without_runtime(memory)])), budget=result.budget
        )
        choice = result.choice
        if choice is None:
            note = f"The draft model {name} leaves too little room for the model."
            return replace(result, notes=(*result.notes, note))
        settings = draft_settings(draft, choice.settings, choice.estimate.n_layer)
        memory = draft_estimate(draft, settings, result.budget)
    added = without_runtime(memory)
    where = "on GPU0" if memory.gpus else "in RAM"
    note = (
        f"Draft model {name}: {format_bytes(added.total)} more, its {draft.n_layer + 1} layers "
        f"{where}, {settings.n_ctx} tokens of cache; counted in the placement."
    )
    both = replace(choice, estimate=combined(choice.estimate, memory))
    return replace(result, choice=both, notes=(*result.notes, note))
