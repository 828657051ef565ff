"""llama.cpp's NUMA modes on machines with several memory nodes (multi-socket servers).

Decoding on the CPU reads every weight once per token, so it runs at the speed of the
memory it reads. On a machine with several NUMA nodes each socket has its own
memory channels:

- `distribute` (llama.cpp's `--numa distribute`): threads spread evenly over the
  nodes, and the model's pages, faulted in by the threads that use them, end up
  spread too, so decoding uses every node's channels. llama.cpp's users report up to
  twice the speed of running without it on two nodes (llama.cpp issue 13850). Chosen
  whenever layers run on the CPU.
- `isolate`: the process and its threads stay on one node. Chosen when the CPU has
  next to nothing to do (every layer on a GPU): threads that synchronize every token
  across sockets cost more than they bring.

Pages already in the page cache stay on the node that first read them, whatever
the mode: after a change of mode the cache must be dropped for the pages to move
(`sync; echo 3 > /proc/sys/vm/drop_caches` as root). The worker checks where the
model's pages really are after a load (`engine.numa`) and says so when they sit on
one node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localllm.hardware.report import NumaNode


@dataclass(frozen=True)
class NumaPlan:
    mode: str
    """`distribute`, `isolate`, or "" (one node: nothing to choose)."""
    cpus: tuple[int, ...]
    """`isolate`: the CPUs of the node the worker is pinned to."""
    threads: int
    reason: str


def describe(mode: str, cpus: Sequence[int], threads: int, nodes: Sequence[NumaNode]) -> str:
    """The plan's sentence for a load's NUMA settings ("" without a mode)."""
    if not mode:
        return ""
    nodes = [n for n in nodes if n.cpus]
    if mode == "isolate":
        node = next((n.id for n in nodes if tuple(n.cpus) == tuple(cpus)), "?")
        return (
            f"NUMA: {len(nodes)} nodes; every layer is on the GPU, so the worker stays on "
            f"node {node} ({threads} threads), with no traffic between sockets."
        )
    return (
        f"NUMA: {len(nodes)} nodes; the CPU's layers read their weights from every node's "
        f"memory: {threads} threads spread over the {len(nodes)} nodes (llama.cpp's "
        "distribute). Drop the page cache after a change of mode, or the model's pages "
        "stay where they were first read."
    )


def numa_plan(nodes: Sequence[NumaNode], threads: int, all_on_gpu: bool) -> NumaPlan:
    """The mode for a load with `threads` CPU threads; `all_on_gpu`: every layer offloaded."""
    nodes = [n for n in nodes if n.cpus]
    if len(nodes) < 2:
        return NumaPlan("", (), threads, "")
    total = sum(len(n.cpus) for n in nodes)
    if all_on_gpu:
        best = max(nodes, key=lambda n: (n.memory_free or 0, -n.id))
        mine = max(1, round(threads * len(best.cpus) / total))
        return NumaPlan("isolate", best.cpus, mine, describe("isolate", best.cpus, mine, nodes))
    return NumaPlan("distribute", (), threads, describe("distribute", (), threads, nodes))
