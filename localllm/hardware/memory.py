"""Memory probe: RAM, swap, the container's limit and NUMA nodes.

A container's memory limit (cgroup) is what matters for a model that must fit
without being killed, so when it is lower than the RAM it replaces it.
"""

from __future__ import annotations

import re

from localllm.hardware.host import Host, MemoryCounters
from localllm.hardware.report import MemoryReport, NumaNode
from localllm.hardware.textformats import parse_cpulist, parse_int, parse_kb_lines

# cgroup v1 spells "no limit" as a page-aligned number near 2**63.
_UNLIMITED = 1 << 60
_NODE_DIR = re.compile(r"^node(\d+)$")


def probe_memory(host: Host) -> tuple[MemoryReport, list[str]]:
    notes: list[str] = []
    counters = host.memory() or _counters_from_meminfo(host)
    if counters is None:
        notes.append("cannot read the memory size (psutil and /proc/meminfo failed)")
        counters = MemoryCounters(total=0, available=0, swap_total=0, swap_free=0)
    total, available = counters.total, counters.available
    if total <= 0:
        notes.append("the OS reports 0 B of RAM: memory-based planning is unreliable")
        total = 0
    if available <= 0:
        notes.append("the OS reports 0 B of RAM available: close other programs or check the probe")
        available = 0
    if total and available > total:
        notes.append("available memory was reported above the total: clamped to the total")
        available = total

    limit = None
    if host.system == "Linux":
        limit, in_use = _cgroup_memory(host)
        if limit is not None and (total == 0 or limit < total):
            notes.append(f"a container limit caps memory at {limit / 2**30:.1f} GiB")
            total = limit
            if in_use is not None:
                available = min(available, max(limit - in_use, 0))
        else:
            limit = None

    swap_total = max(counters.swap_total, 0)
    swap_free = min(max(counters.swap_free, 0), swap_total)
    nodes = _numa_nodes(host) if host.system == "Linux" else ()
    report = MemoryReport(
        total=total,
        available=available,
        swap_total=swap_total,
        swap_free=swap_free,
        cgroup_limit=limit,
        numa_nodes=nodes,
    )
    return report, notes


def _counters_from_meminfo(host: Host) -> MemoryCounters | None:
    info = parse_kb_lines(host.read_text("/proc/meminfo"))
    if "MemTotal" not in info:
        return None
    return MemoryCounters(
        total=info["MemTotal"],
        available=info.get("MemAvailable", info.get("MemFree", 0)),
        swap_total=info.get("SwapTotal", 0),
        swap_free=info.get("SwapFree", 0),
    )


def _cgroup_memory(host: Host) -> tuple[int | None, int | None]:
    """(limit, usage less reclaimable page cache), cgroup v2 then v1."""
    for base, limit_file, usage_file, cache_key in (
        ("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
         "total_inactive_file"),
    ):  # fmt: skip
        limit = parse_int(host.read_text(f"{base}/{limit_file}"))
        if limit is None:
            continue
        if limit <= 0 or limit >= _UNLIMITED:
            return None, None
        usage = parse_int(host.read_text(f"{base}/{usage_file}"))
        if usage is not None:
            usage -= _stat_value(host.read_text(f"{base}/memory.stat"), cache_key)
        return limit, usage
    return None, None


def _stat_value(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return parse_int(value) or 0
    return 0


def _numa_nodes(host: Host) -> tuple[NumaNode, ...]:
    base = "/sys/devices/system/node"
    nodes = []
    for entry in host.list_dir(base) or []:
        match = _NODE_DIR.match(entry)
        if not match:
            continue
        info = parse_kb_lines(host.read_text(f"{base}/{entry}/meminfo"))
        nodes.append(
            NumaNode(
                id=int(match.group(1)),
                cpus=parse_cpulist(host.read_text(f"{base}/{entry}/cpulist")),
                memory_total=info.get("MemTotal"),
                memory_free=info.get("MemFree"),
            )
        )
    return tuple(sorted(nodes, key=lambda n: n.id))
