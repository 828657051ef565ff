"""Choose the quantization and load settings for a model on a machine.

For each quantization: try it entirely on the GPU (f16 KV cache, then q8_0),
else the most layers the GPU takes with the rest in RAM, else the CPU alone
(without flash attention where that fits: `settings.flash_attention`); never more
than the budgets allow (`budget.py`). Then pick:

1. upgrade: a better quality than the Q4_K_M class (`TARGET_BAND`), when it
   fits entirely on the GPU with 10 % of the budget to spare (Q8_0 and F16
   count as one band, the smaller first);
2. target: the best of the Q4_K_M class, entirely on the GPU, partly, or on
   the CPU: on the CPU and with partial offload, speed is bytes read per token
   over memory bandwidth, so a bigger file costs speed in proportion;
3. step down: the best at or above `QUALITY_FLOOR` that fits, among those
   within 10 % of the fastest;
4. else the best that fits at all, with a warning about quality;
5. else nothing, with what it would take.

Without a requested context, the largest of 8192, 4096, 2048... (never above
the training context) at which something fits is used. `measure`, when
given, checks the pick against llama.cpp's own trial load and re-plans if
llama.cpp wants more than the formulas said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from localllm.gguf.info import ModelInfo
from localllm.planner.budget import Budget
from localllm.planner.memory import GpuTarget, MemoryEstimate, estimate, kv_bytes
from localllm.planner.network import hops, seconds_per_token
from localllm.planner.numa import numa_plan
from localllm.planner.quality import QUALITY_FLOOR, TARGET_BAND, kl_divergence, quality_key
from localllm.planner.settings import LoadSettings, MeasuredBuffers, flash_attention

DEFAULT_CONTEXTS = (8192, 4096, 2048, 1024, 512)
CPU_EFFICIENCY = 0.65
GPU_EFFICIENCY = 0.8
GPU_LAYER_LATENCY_S = 80e-6
"""Per offloaded layer and token: kernel launches bound small models on big GPUs
(a 1B model on an H200 decodes at ~700 tokens/s, not at its bandwidth's 10 000)."""
SPEED_TOLERANCE = 0.9
UPGRADE_SPARE = 0.1

Measure = Callable[["Candidate", LoadSettings], MeasuredBuffers]


class Policy(StrEnum):
    AUTO = "auto"
    GPU_ONLY = "gpu-only"
    CPU_ONLY = "cpu-only"


class Fit(StrEnum):
    FULL_GPU = "full GPU"
    PARTIAL = "partial"
    CPU = "CPU"
    NONE = "won't fit"


@dataclass(frozen=True)
class Candidate:
    """One quantization of a model: its header facts and what downloading it costs."""

    label: str
    model: ModelInfo
    download_bytes: int
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    candidate: Candidate
    fit: Fit
    settings: LoadSettings
    estimate: MemoryEstimate
    tokens_per_s: float | None
    short_by: int = 0
    """With Fit.NONE: bytes missing for the CPU-only load."""
    measured: bool = False
    spread: MemoryEstimate | None = None
    """With Fit.NONE and GPUs: every layer offloaded, by device (what each would hold)."""

    @property
    def label(self) -> str:
        return self.candidate.label


@dataclass(frozen=True)
class Plan:
    model: str
    n_ctx: int
    requested_ctx: int | None
    policy: Policy
    options: tuple[Option, ...]
    choice: Option | None
    budget: Budget
    below_floor: bool = False
    notes: tuple[str, ...] = ()
    """What the caller decided around the plan (e.g. whether to use RPC workers), said first."""
    kv_type: str | None = None
    """The KV cache type asked for (`PARAMETER kv_cache_type`); None: the planner's."""


def plan(
    candidates: Sequence[Candidate],
    budget: Budget,
    n_ctx: int | None = None,
    policy: Policy = Policy.AUTO,
    measure: Measure | None = None,
    kv_type: str | None = None,
) -> Plan:
    """The plan for these quantizations of one model on `budget`'s machine; `kv_type`:
    the KV cache type asked for (else f16, or q8_0 where that alone fits it on the GPU)."""
    if not candidates:
        raise ValueError("plan() needs at least one candidate")
    train_ctx = max(c.model.context_length for c in candidates) or 4096
    if n_ctx is not None:
        contexts: tuple[int, ...] = (max(min(n_ctx, train_ctx), 256),)
    else:
        contexts = tuple(c for c in DEFAULT_CONTEXTS if c <= train_ctx) or (train_ctx,)
    result = None
    for ctx in contexts:
        options = [evaluate(c, budget, ctx, policy, kv_type=kv_type) for c in candidates]
        name = candidates[0].model.name
        result = _choose(name, ctx, n_ctx, policy, options, budget, measure, kv_type)
        if result.choice is not None:
            return result
    assert result is not None
    return result


def evaluate(
    candidate: Candidate,
    budget: Budget,
    n_ctx: int,
    policy: Policy = Policy.AUTO,
    measured: MeasuredBuffers | None = None,
    kv_type: str | None = None,
) -> Option:
    """How `candidate` fits at `n_ctx`: the most GPU layers the budgets allow."""
    model = candidate.model
    kv_types = _kv_types(model, kv_type)
    base = LoadSettings(n_gpu_layers=0, n_ctx=n_ctx, n_threads=budget.threads,
                        type_k=kv_types[0], type_v=kv_types[0])  # fmt: skip
    targets = gpu_targets(budget) if policy is not Policy.CPU_ONLY else ()
    full = model.n_layer + 1

    def est(s: LoadSettings) -> MemoryEstimate:
        return estimate(model, s, targets, budget.repack, measured)

    if targets:
        for kv in kv_types:
            s = replace(base, n_gpu_layers=full, type_k=kv, type_v=kv)
            e = est(s)
            if fits(e, budget):
                return _option(candidate, Fit.FULL_GPU, s, e, budget, measured)
        if policy is Policy.AUTO:
            ngl = _most_layers(lambda g: est(replace(base, n_gpu_layers=g)), budget, full - 1)
            if ngl > 0:
                s = replace(base, n_gpu_layers=ngl)
                return _option(candidate, Fit.PARTIAL, s, est(s), budget, measured)
    cpu = est(base)
    if policy is not Policy.GPU_ONLY:  # without flash attention (`flash_attention`) if it fits
        plain = replace(base, flash_attn=flash_attention(0, base.type_v))
        for s, e in ((plain, est(plain)), (base, cpu)):
            if fits(e, budget):
                return _option(candidate, Fit.CPU, s, e, budget, measured)
    needed = (
        cpu.total if policy is not Policy.GPU_ONLY else est(replace(base, n_gpu_layers=full)).total
    )
    room = budget.ram_usable + sum(g.usable for g in budget.gpus if not g.unified)
    spread = est(replace(base, n_gpu_layers=full)) if targets else None
    return Option(candidate, Fit.NONE, base, cpu, None, short_by=max(needed - room, 1),
                  spread=spread)  # fmt: skip


def _choose(
    name: str,
    ctx: int,
    requested: int | None,
    policy: Policy,
    options: list[Option],
    budget: Budget,
    measure: Measure | None,
    kv_type: str | None = None,
) -> Plan:
    tried: set[str] = set()
    while True:
        pick, below_floor = _pick([o for o in options if o.label not in tried], budget)
        if pick is None or measure is None or pick.measured:
            return Plan(name, ctx, requested, policy, tuple(options), pick, budget, below_floor,
                        kv_type=kv_type)  # fmt: skip
        checked = evaluate(
            pick.candidate, budget, ctx, policy, measure(pick.candidate, pick.settings),
            kv_type=kv_type,
        )  # fmt: skip
        checked = replace(checked, measured=True)
        options = [checked if o.label == pick.label else o for o in options]
        if checked.fit is Fit.NONE:
            tried.add(pick.label)


def _pick(options: Sequence[Option], budget: Budget) -> tuple[Option | None, bool]:
    """The steps of the module docstring; returns (pick, below the quality floor)."""
    ranked = sorted(
        (o for o in options if o.fit is not Fit.NONE),
        key=lambda o: quality_key(o.label, o.candidate.model.size_bytes),
    )

    def kl(o: Option) -> float:
        value = kl_divergence(o.label)
        return value if value is not None else QUALITY_FLOOR

    roomy = [o for o in ranked if o.fit is Fit.FULL_GPU and gpu_spare(o, budget) >= UPGRADE_SPARE]
    upgrades = [o for o in roomy if kl(o) < _best_in_band(ranked)]
    if upgrades:
        return upgrades[0], False
    target = [o for o in ranked if TARGET_BAND[0] < kl(o) <= TARGET_BAND[1]]
    if target:
        return target[0], False
    good = [o for o in ranked if kl(o) <= QUALITY_FLOOR]
    if good:
        fastest = max(o.tokens_per_s or 0.0 for o in good)
        return next(o for o in good if (o.tokens_per_s or 0.0) >= SPEED_TOLERANCE * fastest), False
    return (ranked[0], True) if ranked else (None, False)


def _best_in_band(ranked: Sequence[Option]) -> float:
    """The best KL in the target band among fitting options (the bar an upgrade must beat)."""
    low, high = TARGET_BAND
    band = [k for o in ranked if (k := kl_divergence(o.label)) is not None and low < k <= high]
    return min(band, default=high)


def gpu_spare(option: Option, budget: Budget) -> float:
    """The smallest share of a GPU budget the option leaves unused."""
    by_name = {f"GPU{g.index}": g for g in budget.gpus}
    shares = [
        1 - use.total / by_name[use.device].usable
        for use in option.estimate.gpus
        if by_name[use.device].usable
    ]
    return min(shares, default=0.0)


def gpu_targets(budget: Budget) -> tuple[GpuTarget, ...]:
    return tuple(
        GpuTarget(g.index, g.backend, share=float(max(g.usable, 1)))
        for g in budget.gpus
        if g.usable > 0
    )


def _kv_types(model: ModelInfo, asked: str | None = None) -> tuple[str, ...]:
    """The KV cache types to try in turn: the one asked for, else f16 then q8_0; a
    quantized cache only where llama.cpp accepts it (head sizes a multiple of its block
    of 32), else f16."""
    blocks = model.key_length % 32 == 0 and model.value_length % 32 == 0
    if asked is not None:
        return (asked if blocks else "f16",)
    return ("f16", "q8_0") if blocks else ("f16",)


def fits(e: MemoryEstimate, budget: Budget) -> bool:
    by_name = {f"GPU{g.index}": g for g in budget.gpus}
    unified_total = e.host.total
    for use in e.gpus:
        gpu = by_name[use.device]
        if use.total > gpu.usable:
            return False
        if gpu.unified:
            unified_total += use.total
    return unified_total <= budget.ram_usable


def _most_layers(est: Callable[[int], MemoryEstimate], budget: Budget, most: int) -> int:
    """The largest GPU layer count in [1, most] that fits (GPU use grows with it,
    RAM use shrinks, so the largest that the GPUs take is the one to check)."""
    by_name = {f"GPU{g.index}": g for g in budget.gpus}

    def gpus_ok(g: int) -> bool:
        return all(u.total <= by_name[u.device].usable for u in est(g).gpus)

    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if gpus_ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo if lo > 0 and fits(est(lo), budget) else 0


def _option(
    candidate: Candidate,
    fit: Fit,
    settings: LoadSettings,
    e: MemoryEstimate,
    budget: Budget,
    measured: MeasuredBuffers | None,
) -> Option:
    numa = numa_plan(budget.numa_nodes, settings.n_threads, e.gpu_layers > e.n_layer)
    if numa.mode:
        settings = replace(settings, numa=numa.mode, cpus=numa.cpus, n_threads=numa.threads)
    speed = tokens_per_second(candidate.model, settings, e, budget)
    return Option(candidate, fit, settings, e, speed, measured=measured is not None)


def tokens_per_second(
    model: ModelInfo, settings: LoadSettings, e: MemoryEstimate, budget: Budget
) -> float:
    """Decode speed: every weight (only the used experts of an MoE) and half the
    KV cache are read once per token, from the memory each lives in; layers on RPC
    workers add the network's hops (`planner.network`)."""
    cpu_bytes, gpu_bytes = bytes_per_token(model, e.gpu_layers, kv_bytes(model, settings), 0.5)
    seconds = cpu_bytes / (CPU_EFFICIENCY * budget.cpu_bandwidth_gbs * 1e9)
    if gpu_bytes and budget.gpus:
        by_name = {f"GPU{g.index}": g for g in budget.gpus}
        held = [(u.layers, by_name[u.device]) for u in e.gpus if u.device in by_name]
        layers = sum(n for n, _ in held)
        if layers:  # each device reads its share of the layers at its own speed
            for n, gpu in held:
                seconds += gpu_bytes * n / layers / (GPU_EFFICIENCY * gpu.bandwidth_gbs * 1e9)
        else:
            gpu_gbs = min(g.bandwidth_gbs for g in budget.gpus)
            seconds += gpu_bytes / (GPU_EFFICIENCY * gpu_gbs * 1e9)
        seconds += GPU_LAYER_LATENCY_S * e.gpu_layers
    seconds += seconds_per_token(hops(model.n_embd, e, budget))
    return 1.0 / seconds if seconds > 0 else 0.0


def bytes_per_token(
    model: ModelInfo, gpu_layers: int, kv: Sequence[int], kv_share: float
) -> tuple[float, float]:
    """(bytes read from RAM, bytes read from VRAM) to decode one token: the weights
    used (an MoE's active experts only) and `kv_share` of each layer's KV bytes `kv`."""
    first_gpu = model.n_layer + 1 - gpu_layers
    cpu_bytes = gpu_bytes = 0.0
    for layer in model.layers:
        used = float(layer.weight_bytes - layer.expert_bytes)
        if model.expert_count:
            used += layer.expert_bytes * model.expert_used_count / model.expert_count
        read = used + kv[layer.index] * kv_share
        if layer.index >= first_gpu:
            gpu_bytes += read
        else:
            cpu_bytes += read
    output = model.output_bytes + (model.input_bytes if model.tied_output else 0)
    if gpu_layers >= 1:
        gpu_bytes += output
    else:
        cpu_bytes += output
    return cpu_bytes, gpu_bytes
