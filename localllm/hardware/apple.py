"""Apple Silicon: the GPU shares RAM, and macOS lets Metal wire only part of it.

Metal's `recommendedMaxWorkingSetSize` is what llama.cpp treats as the GPU's
memory. Without calling Metal we derive it the way macOS does: the
`iogpu.wired_limit_mb` sysctl when an administrator set it, otherwise about two
thirds of RAM up to 36 GiB and three quarters above.
"""

from __future__ import annotations

from collections.abc import Mapping

from localllm.hardware.report import GpuReport
from localllm.hardware.textformats import parse_int

_GIB = 1 << 30
_SMALL_MAC_LIMIT = 36 * _GIB


def metal_working_set(ram: int, wired_limit_mb: int | None) -> int:
    """The share of unified memory Metal lets one process use."""
    if wired_limit_mb and wired_limit_mb > 0:
        return min(wired_limit_mb << 20, ram)
    share = 2 / 3 if ram <= _SMALL_MAC_LIMIT else 3 / 4
    return int(ram * share)


def probe_apple(
    system: str, machine: str, sysctl: Mapping[str, str], available: int
) -> tuple[list[GpuReport], list[str]]:
    """The Apple Silicon GPU; `available` is free RAM (the GPU's free memory too)."""
    if system != "Darwin":
        return [], []
    if machine.lower() not in {"arm64", "aarch64"}:
        return [], ["Apple: an Intel Mac's GPU is not used by llama.cpp's Metal backend here"]
    ram = parse_int(sysctl.get("hw.memsize"))
    if not ram:
        return [], ["Apple: sysctl hw.memsize is missing; the Metal GPU is not reported"]
    wired = parse_int(sysctl.get("iogpu.wired_limit_mb")) or parse_int(
        sysctl.get("debug.iogpu.wired_limit")
    )
    total = metal_working_set(ram, wired)
    free = max(min(total, available), 0)
    chip = sysctl.get("machdep.cpu.brand_string") or "Apple Silicon"
    gpu = GpuReport(
        index=0,
        vendor="apple",
        name=f"{chip} GPU",
        backend="metal",
        memory_total=total,
        memory_free=free,
        memory_used=total - free,
        unified_memory=True,
        usable_by_llama=False,  # decided against the llama.cpp build by detect()
    )
    return [gpu], []
