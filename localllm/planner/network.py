"""What the network costs each token when layers sit on RPC workers.

With a layer split, each device's block of layers is one step of every token:
llama.cpp's RPC client sends the device its input (the hidden state of the
batch's tokens) and the graph command, then waits for the output before the next
device can start. So each remote device costs a token one network round trip
plus its bytes, whatever the devices compute. The bytes are fitted to what
`benchmarks/rpc.py` counted on the loopback interface (2 and 3 workers,
`benchmarks/results/rpc-cpu.md`): the hidden state both ways, about 8 KB of
commands and graph per device and about 340 bytes per layer on it. The
bandwidth is not measured: a gigabit link is assumed, which the plan says.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.planner.budget import Budget
from localllm.planner.memory import MemoryEstimate

ASSUMED_LINK_BYTES_PER_S = 125e6
"""1 Gbit/s: the bandwidth the expected speed assumes between this machine and a worker."""
HOP_FIXED_BYTES = 8_400
HOP_LAYER_BYTES = 340


@dataclass(frozen=True)
class Hop:
    """One remote device's share of a token's trip."""

    endpoint: str
    device: str
    layers: int
    bytes: int
    rtt_s: float

    @property
    def seconds(self) -> float:
        return self.rtt_s + self.bytes / ASSUMED_LINK_BYTES_PER_S


def hops(n_embd: int, estimate: MemoryEstimate, budget: Budget) -> list[Hop]:
    """The network hops of one decoded token, one per remote device holding layers."""
    remote = {f"GPU{g.index}": g for g in budget.gpus if g.endpoint}
    out = []
    for use in estimate.gpus:
        gpu = remote.get(use.device)
        if gpu is None or gpu.endpoint is None or use.layers == 0:
            continue
        size = 2 * n_embd * 4 + HOP_FIXED_BYTES + HOP_LAYER_BYTES * use.layers
        out.append(Hop(gpu.endpoint, gpu.name, use.layers, size, gpu.rtt_s))
    return out


def seconds_per_token(trip: list[Hop]) -> float:
    return sum(h.seconds for h in trip)


def describe(trip: list[Hop]) -> str | None:
    """The network's share of the expected speed, in words (None without workers)."""
    if not trip:
        return None
    hosts = len({h.endpoint for h in trip})
    rtt = max(h.rtt_s for h in trip)
    size = sum(h.bytes for h in trip)
    return (
        f"The network adds {len(trip)} hop{'s' * (len(trip) != 1)} per token to "
        f"{hosts} worker{'s' * (hosts != 1)}: a round trip each (measured up to "
        f"{rtt * 1e3:.2f} ms) and about {size / 1000:.0f} KB in all at an assumed 1 Gbit/s, "
        f"{seconds_per_token(trip) * 1e3:.2f} ms per token, included above."
    )
