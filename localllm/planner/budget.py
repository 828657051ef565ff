"""What a machine offers a model: per-GPU and RAM budgets after safety margins.

Built from a `HardwareReport`, optionally changed to answer "what if I had
this machine" (`--vram`, `--ram`, `--gpu NAME`). Margins: llama.cpp's own
fit leaves 1 GiB per GPU; that is a large share of a small GPU, so the margin
scales down to 1/48 of the card (never under 128 MiB). The CUDA context is
not in the margin: the memory estimate counts it, as measured on a real GPU
(`planner.memory`), and with it a planned load is at most one layer short of
the most that load (`tests/planner/test_gpu_recorded.py`). RAM keeps the
larger of 1 GiB and a tenth of the total for the OS and other programs, so a
plan never pushes the system into swap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from localllm.errors import LocalLLMError
from localllm.hardware.bandwidth import gpu_bandwidth
from localllm.hardware.report import HardwareReport, NumaNode
from localllm.planner.memory import MemoryEstimate

if TYPE_CHECKING:
    from localllm.remote.workers import RemoteDevice

GIB = 1 << 30
REMOTE_INDEX = 100
"""The budget index of the workers' first device: plans name devices `GPU{index}`, and
remote ones start here so they never take a name of this machine's GPUs."""
REPACK_FLAGS = ("avx2", "dotprod")


class BudgetError(LocalLLMError):
    """A what-if value is unusable."""


@dataclass(frozen=True)
class GpuBudget:
    index: int
    name: str
    vendor: str
    backend: str
    total: int
    free: int
    usable: int
    """Free memory less the safety margin: what a plan may fill."""
    unified: bool
    bandwidth_gbs: float
    endpoint: str | None = None
    """The RPC worker serving this device (None: this machine's own GPU)."""
    rtt_s: float = 0.0
    """The network round trip to `endpoint`, as measured when the worker was asked."""


@dataclass(frozen=True)
class Budget:
    gpus: tuple[GpuBudget, ...]
    ram_total: int
    ram_available: int
    ram_usable: int
    cpu_bandwidth_gbs: float
    threads: int
    repack: bool
    what_if: tuple[str, ...] = ()
    """How this budget differs from the detected machine, in words."""
    numa_nodes: tuple[NumaNode, ...] = ()


def gpu_margin(total: int) -> int:
    return min(GIB, max(128 << 20, total // 48))


def ram_margin(total: int) -> int:
    return max(GIB, total // 10)


def budget_for(
    report: HardwareReport,
    cpu_bandwidth_gbs: float,
    vram: int | None = None,
    ram: int | None = None,
    gpu_name: str | None = None,
) -> Budget:
    """The budget of `report`'s machine, or of the machine the what-if values describe."""
    what_if: list[str] = []
    gpus = [
        GpuBudget(
            index=g.index,
            name=g.name,
            vendor=g.vendor,
            backend=g.backend,
            total=g.memory_total,
            free=g.memory_free,
            usable=max(g.memory_free - gpu_margin(g.memory_total), 0),
            unified=g.unified_memory,
            bandwidth_gbs=gpu_bandwidth(g.name, g.vendor),
        )
        for g in report.gpus
        if g.usable_by_llama
    ]
    ram_total, ram_available = report.memory.total, report.memory.available
    if ram is not None:
        if ram <= 0:
            raise BudgetError("--ram must be a positive size, e.g. 32G")
        ram_total, ram_available = ram, int(ram * 0.9)
        what_if.append(f"{ram / GIB:.0f} GiB of RAM (90 % of it free)")
    if vram is not None or gpu_name is not None:
        if vram is not None and vram <= 0:
            raise BudgetError(
                "--vram must be a positive size, e.g. 12G; use --policy cpu-only for no GPU"
            )
        gpus = [_hypothetical_gpu(gpus, vram, gpu_name)]
        what_if.append(f"one {gpus[0].name} with {gpus[0].total / GIB:.0f} GiB")
    flags = set(report.cpu.flags)
    repack = "repack" in report.llama.cpu_features or (
        not report.llama.installed and any(f in flags for f in REPACK_FLAGS)
    )
    return Budget(
        gpus=tuple(gpus),
        ram_total=ram_total,
        ram_available=ram_available,
        ram_usable=max(ram_available - ram_margin(ram_total), 0),
        cpu_bandwidth_gbs=cpu_bandwidth_gbs,
        threads=report.cpu.recommended_threads,
        repack=repack,
        what_if=tuple(what_if),
        numa_nodes=report.memory.numa_nodes,
    )


def less(budget: Budget, used: Iterable[MemoryEstimate]) -> Budget:
    """What `budget` leaves once models using `used` are loaded (the server's other models)."""
    used = list(used)
    host = sum(e.host.total for e in used)
    by_gpu: dict[str, int] = {}
    for e in used:
        for g in e.gpus:
            by_gpu[g.device] = by_gpu.get(g.device, 0) + g.total
    gpus = tuple(
        replace(g, usable=max(g.usable - by_gpu.get(f"GPU{g.index}", 0), 0)) for g in budget.gpus
    )
    host += sum(by_gpu.get(f"GPU{g.index}", 0) for g in budget.gpus if g.unified)
    return replace(budget, gpus=gpus, ram_usable=max(budget.ram_usable - host, 0))


def with_workers(budget: Budget, devices: Sequence[RemoteDevice]) -> Budget:
    """`budget` with the RPC workers' devices ahead of this machine's GPUs, in llama.cpp's
    order (a model's first layers go to the workers: one network hop each way per token).

    A worker's memory speed is not known from here: it is taken as this machine's CPU
    bandwidth; the network's cost per token comes from each worker's round trip
    (`planner.network`)."""
    nth = [sum(e.endpoint == d.endpoint for e in devices[:i]) for i, d in enumerate(devices)]
    remote = tuple(
        GpuBudget(
            index=REMOTE_INDEX + i,
            name=f"device {nth[i]}",
            vendor="rpc",
            backend="rpc",
            total=d.total,
            free=d.free,
            usable=max(d.free - gpu_margin(d.total), 0),
            unified=False,
            bandwidth_gbs=budget.cpu_bandwidth_gbs,
            endpoint=d.endpoint,
            rtt_s=d.rtt_s,
        )
        for i, d in enumerate(devices)
    )
    return replace(budget, gpus=remote + budget.gpus)


def _hypothetical_gpu(detected: list[GpuBudget], vram: int | None, name: str | None) -> GpuBudget:
    base = detected[0] if detected else None
    label = name or (base.name if base else "GPU")
    vendor = "apple" if label.lower().startswith(("apple", "m1", "m2", "m3", "m4")) else "nvidia"
    if vram is None:
        if base is None:
            raise BudgetError(f"how much memory has the {label}? add --vram, e.g. --vram 24G")
        vram = base.total
    unified = vendor == "apple"
    return GpuBudget(
        index=0,
        name=label,
        vendor=vendor,
        backend="metal" if unified else "cuda",
        total=vram,
        free=vram,
        usable=max(vram - gpu_margin(vram), 0),
        unified=unified,
        bandwidth_gbs=gpu_bandwidth(label, vendor),
    )


def parse_size(text: str) -> int:
    """`12G`, `12GiB`, `512M`, `24000MiB` -> bytes (binary units)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = cleaned, ""
    if cleaned and cleaned[-1] in units:
        number, unit = cleaned[:-1], cleaned[-1]
    try:
        value = float(number)
    except ValueError:
        raise BudgetError(f"not a size: {text!r} (try 12G or 512M)") from None
    if value <= 0:
        raise BudgetError(f"a size must be positive, got {text!r}")
    return int(value * units[unit])
