"""The plan in words: what was picked, why, and what it leaves."""

from __future__ import annotations

from dataclasses import replace

from localllm.planner.memory import kv_bytes
from localllm.planner.network import describe as describe_network
from localllm.planner.network import hops
from localllm.planner.numa import describe
from localllm.planner.plan import Fit, Option, Plan, gpu_spare
from localllm.planner.quality import QUALITY_FLOOR, describe_cost, kl_divergence
from localllm.units import format_bytes

GIB = 1 << 30


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def explain(p: Plan) -> list[str]:
    """Sentences for the plan, most important first."""
    lines: list[str] = list(p.notes)
    b = p.budget
    if b.what_if:
        lines.append("What if this machine had " + " and ".join(b.what_if) + ".")
    choice = p.choice
    if choice is None:
        return lines + _no_fit(p)
    s, e = choice.settings, choice.estimate
    gpu_room = sum(g.usable for g in b.gpus)
    if choice.fit is Fit.FULL_GPU:
        where = (
            f"entirely on the GPU ({_gib(sum(g.total for g in e.gpus))} of {_gib(gpu_room)} "
            "usable after the safety margin)"
        )
    elif choice.fit is Fit.PARTIAL:
        where = (
            f"{s.n_gpu_layers} of {e.n_layer + 1} layers on the GPU and the rest in RAM "
            f"({_gib(e.host.total)} of {_gib(b.ram_usable)} usable)"
        )
    else:
        where = f"on the CPU ({_gib(e.host.total)} of {_gib(b.ram_usable)} of RAM usable)"
    lines.append(f"Picked {choice.label}: it runs {where}.")
    lines.append(_why(p, choice))
    trained = choice.candidate.model.context_length
    if p.requested_ctx is None:
        lines.append(
            f"Context {p.n_ctx} tokens: the largest of 8192 and below that fits "
            f"(the model was trained for {trained})."
        )
    elif p.requested_ctx > p.n_ctx:
        lines.append(f"Context {p.n_ctx} tokens: the model was trained for no more than {trained}.")
    else:
        lines.append(f"Context {p.n_ctx} tokens, as asked.")
    if p.kv_type is not None and s.type_k == p.kv_type:
        model, f16 = choice.candidate.model, replace(s, type_k="f16", type_v="f16")
        saved = sum(kv_bytes(model, f16)) - sum(kv_bytes(model, s))
        lines.append(
            f"KV cache in {s.type_k}, as asked (kv_cache_type): {format_bytes(saved)} less "
            "than f16."
        )
    elif p.kv_type is not None:
        lines.append(f"KV cache in {s.type_k}: this model's heads do not take {p.kv_type}.")
    elif s.type_k != "f16":
        lines.append(
            f"KV cache in {s.type_k} (half the memory of f16, negligible quality loss) "
            "so that it fits entirely on the GPU."
        )
    if choice.tokens_per_s:
        lines.append(
            f"Expected decode speed about {choice.tokens_per_s:.0f} tokens/s "
            f"(weights read once per token at {_bandwidth(p, choice)})."
        )
        network = describe_network(hops(choice.candidate.model.n_embd, e, b))
        if network:
            lines.append(network)
    lines.append(
        f"Threads: {s.n_threads} (physical performance cores); batch {s.n_batch}, "
        f"micro-batch {s.n_ubatch}; flash attention {'on' if s.flash_attn else 'off'}"
        + ("." if s.flash_attn else " (attention on the CPU: decoding deep in a chat is faster).")
    )
    numa = describe(s.numa, s.cpus, s.n_threads, b.numa_nodes)
    if numa:
        lines.append(numa)
    lines += _tips(p, choice)
    if choice.measured:
        lines.append("Memory checked against llama.cpp's own trial load of this file.")
    return lines


def _why(p: Plan, choice: Option) -> str:
    cost = describe_cost(choice.label)
    if p.below_floor:
        return (
            f"Only lower-quality files fit; {choice.label}'s quality loss is {cost}. "
            "Consider a smaller context or a smaller model."
        )
    better = [
        o for o in p.options
        if (k := kl_divergence(o.label)) is not None and k < (kl_divergence(choice.label) or 0.0)
    ]  # fmt: skip
    if choice.fit is Fit.FULL_GPU and better:
        not_full = [o.label for o in better if o.fit is not Fit.FULL_GPU]
        tight = [o.label for o in better if o.fit is Fit.FULL_GPU]
        parts = []
        if not_full:
            parts.append(f"{', '.join(not_full)} would not fit entirely on the GPU")
        if tight:
            parts.append(f"{', '.join(tight)} would leave less than 10 % of it spare")
        return f"Quality loss vs F16: {cost}; " + "; ".join(parts) + "."
    if choice.fit is Fit.FULL_GPU:
        return f"Quality loss vs F16: {cost}; the best available that fits entirely on the GPU."
    return (
        f"Quality loss vs F16: {cost}; the Q4_K_M class is the best trade of size and quality "
        "when the model does not fit entirely on the GPU (larger files only run slower there)."
    )


def _tips(p: Plan, choice: Option) -> list[str]:
    if choice.fit is Fit.FULL_GPU:
        spare = gpu_spare(choice, p.budget)
        return [f"Leaves {spare:.0%} of the GPU budget spare."] if p.budget.gpus else []
    faster = [
        o for o in p.options
        if o.fit is Fit.FULL_GPU and (kl_divergence(o.label) or 1.0) <= QUALITY_FLOOR
    ]  # fmt: skip
    if faster and choice.tokens_per_s:
        o = faster[0]
        ratio = (o.tokens_per_s or 0.0) / choice.tokens_per_s
        return [
            f"Tip: {o.label} fits entirely on the GPU and would run about {ratio:.1f}x faster "
            f"with a {describe_cost(o.label)} quality loss."
        ]
    return []


def _bandwidth(p: Plan, choice: Option) -> str:
    cpu = f"{p.budget.cpu_bandwidth_gbs:.0f} GB/s (RAM, measured)"
    if choice.fit is Fit.CPU or not p.budget.gpus:
        return cpu
    gpu = f"{min(g.bandwidth_gbs for g in p.budget.gpus):.0f} GB/s (GPU)"
    return gpu if choice.fit is Fit.FULL_GPU else f"{gpu} and {cpu}"


def _no_fit(p: Plan) -> list[str]:
    smallest = min(p.options, key=lambda o: o.estimate.total)
    room = p.budget.ram_usable + sum(g.usable for g in p.budget.gpus if not g.unified)
    remote = [g for g in p.budget.gpus if g.endpoint]
    if not remote:
        return [
            f"Nothing fits: the smallest, {smallest.label}, needs about "
            f"{_gib(smallest.estimate.total)} at {p.n_ctx} tokens of context; this machine can "
            f"give {_gib(room)} (RAM and GPU after safety margins).",
            f"It would need about {_gib(smallest.short_by)} more memory, a smaller context "
            "(--ctx), or a smaller model.",
        ]
    here = p.budget.ram_usable + sum(g.usable for g in p.budget.gpus if not g.endpoint)
    hosts: dict[str, int] = {"this machine": here}
    for g in remote:
        assert g.endpoint is not None
        hosts[g.endpoint] = hosts.get(g.endpoint, 0) + g.usable
    each = ", ".join(f"{host} {_gib(n)}" for host, n in hosts.items())
    first = (
        f"Nothing fits: the smallest, {smallest.label}, needs about "
        f"{_gib(smallest.estimate.total)} at {p.n_ctx} tokens of context; the hosts can give "
        f"{_gib(room)} in all after safety margins ({each})."
    )
    short = smallest.estimate.total - room
    if short > 0:
        return [first, f"It would need about {_gib(short)} more on any one of them (the layers "
                "split by free memory), another worker, a smaller context (--ctx), or a smaller "
                "model."]  # fmt: skip
    return [first, *_lacking(p, smallest)]


def _lacking(p: Plan, option: Option) -> list[str]:
    """Where the hosts hold enough in all but one device cannot hold its own share: which,
    how much it lacks, and why (this machine keeps what is not a layer)."""
    spread = option.spread
    if spread is None:
        return ["It does not fit as the layers split by free memory: a smaller context "
                "(--ctx) or a smaller model."]  # fmt: skip
    out = []
    host_short = spread.host.total - p.budget.ram_usable
    if host_short > 0:
        out.append(
            f"This machine lacks about {_gib(host_short)} for its own share: it holds "
            f"{_gib(spread.host.total)} (the input embeddings, the graph's buffers and what "
            f"stays off the GPUs) and can give {_gib(p.budget.ram_usable)}; free memory here, "
            "or a smaller context (--ctx)."
        )
    for gpu in p.budget.gpus:
        use = next((d for d in spread.gpus if d.device == f"GPU{gpu.index}"), None)
        if use is not None and use.total > gpu.usable:
            where = gpu.endpoint or "this machine"
            out.append(f"GPU{gpu.index} ({where}) lacks about {_gib(use.total - gpu.usable)} for "
                       f"its {use.layers} layers.")  # fmt: skip
    return out or ["It does not fit as the layers split by free memory: a smaller context "
                   "(--ctx) or a smaller model."]  # fmt: skip
