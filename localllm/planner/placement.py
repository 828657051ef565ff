"""Where a plan puts a model, host by host: what `plan` and `ps` show.

A plan's memory estimate names devices as the planner does (`CPU`, `GPU{index}`);
with RPC workers in the budget some of those devices are another machine's. This
turns an estimate back into hosts and the devices' own names, with the layers and
bytes each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.planner.budget import Budget
from localllm.planner.memory import MemoryEstimate
from localllm.planner.plan import Fit, Option
from localllm.planner.quality import kl_divergence

HERE = "this machine"
HOST_DEVICE = "CPU and RAM"


@dataclass(frozen=True)
class Placed:
    host: str
    """`this machine`, or the RPC worker's HOST:PORT."""
    device: str
    layers: int
    bytes: int


def placement(estimate: MemoryEstimate, budget: Budget) -> list[Placed]:
    """Each device that holds part of the model, workers first (llama.cpp's order),
    then this machine's GPUs, then its CPU and RAM."""
    by_name = {f"GPU{g.index}": g for g in budget.gpus}
    out = []
    for use in estimate.gpus:
        gpu = by_name.get(use.device)
        host = gpu.endpoint if gpu is not None and gpu.endpoint else HERE
        out.append(Placed(host, gpu.name if gpu else use.device, use.layers, use.total))
    host_layers = max(estimate.n_layer + 1 - estimate.gpu_layers, 0)
    out.append(Placed(HERE, HOST_DEVICE, host_layers, estimate.host.total))
    return out


def hosts(placed: list[Placed]) -> list[str]:
    """One line per device, for people: `10.0.0.2:50052 RPC0: 12 layers, 3.1 GiB`."""
    from localllm.units import format_bytes

    return [
        f"{p.host} {p.device}: {p.layers} layer{'s' * (p.layers != 1)}, {format_bytes(p.bytes)}"
        for p in placed
    ]


def workers_pay(here: Option | None, spread: Option) -> str | None:
    """Why loading across the workers beats loading on this machine alone, or None
    when it does not: each token then pays the network's hops, so the workers are
    worth it only for a model that fits only with them, a better quantization or a
    longer context, or a faster decode with the hops counted."""
    if here is None or here.fit is Fit.NONE:
        return "the model does not fit on this machine alone"
    if spread.fit is Fit.NONE:
        return None
    longer, shorter = spread.settings.n_ctx_seq, here.settings.n_ctx_seq
    if longer > shorter:  # per request: more slots alone are not worth the hops
        return f"a longer context fits ({longer} tokens, {shorter} here)"
    better, worse = kl_divergence(spread.label), kl_divergence(here.label)
    if better is not None and worse is not None and better < worse:
        return f"{spread.label} fits with them ({here.label} alone)"
    fast, slow = spread.tokens_per_s or 0.0, here.tokens_per_s or 0.0
    if fast > slow:
        return f"it decodes faster with them (about {fast:.0f} tokens/s, {slow:.0f} here)"
    return None
