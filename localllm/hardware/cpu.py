"""CPU probe: brand, cores (physical, logical, performance vs efficiency), flags.

Linux reads `/proc/cpuinfo` and sysfs topology; macOS reads `sysctl`; anything
else falls back to psutil counts and py-cpuinfo (slow: it runs CPUID in a
child process, so it is only asked when the OS files say nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localllm.hardware.host import Host
from localllm.hardware.report import CpuReport
from localllm.hardware.textformats import parse_cpulist, parse_int

# Instruction-set extensions llama.cpp has kernels for, in the Linux kernel's
# spelling where it has one.
LLAMA_FLAGS: tuple[str, ...] = (
    "sse3", "ssse3", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    "neon", "fp16", "dotprod", "i8mm", "sve", "sve2",
)  # fmt: skip

# Other spellings of the same extensions: /proc/cpuinfo on arm64, macOS
# sysctl keys and feature strings, py-cpuinfo.
_FLAG_ALIASES: Mapping[str, str] = {
    "pni": "sse3",
    "supplementalsse3": "ssse3",
    "avx1.0": "avx",
    "avx1_0": "avx",
    "avx2_0": "avx2",
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avxvnni": "avx_vnni",
    "asimd": "neon",
    "asimddp": "dotprod",
    "feat_dotprod": "dotprod",
    "asimdhp": "fp16",
    "fphp": "fp16",
    "feat_fp16": "fp16",
    "neon_fp16": "fp16",
    "feat_i8mm": "i8mm",
    "feat_sve": "sve",
    "feat_sve2": "sve2",
}

# A core whose capacity or top frequency is below this share of the fastest
# core's counts as an efficiency core.
_EFFICIENCY_RATIO = 0.7


def normalize_flags(raw: Sequence[str]) -> tuple[str, ...]:
    """Any source's feature names -> the canonical `LLAMA_FLAGS` subset, in that order."""
    found = {_FLAG_ALIASES.get(name.lower(), name.lower()) for name in raw}
    return tuple(flag for flag in LLAMA_FLAGS if flag in found)


def normalize_arch(machine: str) -> str:
    lowered = machine.lower()
    if lowered in {"x86_64", "amd64", "x64"}:
        return "x86_64"
    if lowered in {"aarch64", "arm64", "armv8l"}:
        return "arm64"
    return lowered or "unknown"


def parse_proc_cpuinfo(text: str) -> list[dict[str, str]]:
    """One dict per block of `/proc/cpuinfo` (a processor, or arm64's trailer)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


@dataclass(frozen=True)
class _Topology:
    cpus: tuple[int, ...]
    package_of: Mapping[int, int]
    core_of: Mapping[int, str]
    """Logical CPU -> a key shared by the hyperthreads of one physical core."""


def probe_cpu(host: Host, sysctl: Mapping[str, str]) -> tuple[CpuReport, list[str]]:
    """Describe the CPU; `sysctl` is macOS's `sysctl hw machdep` output, parsed."""
    if host.system == "Darwin" and sysctl:
        return _probe_macos(host, sysctl)
    if host.system == "Linux":
        return _probe_linux(host)
    return _probe_generic(host, [])


def _probe_linux(host: Host) -> tuple[CpuReport, list[str]]:
    notes: list[str] = []
    text = host.read_text("/proc/cpuinfo")
    if text is None:
        notes.append("cannot read /proc/cpuinfo: CPU brand and flags come from py-cpuinfo")
        return _probe_generic(host, notes)
    blocks = parse_proc_cpuinfo(text)
    processors = [b for b in blocks if "processor" in b and parse_int(b["processor"]) is not None]
    if not processors:
        notes.append("/proc/cpuinfo lists no processors: counts come from psutil")
        return _probe_generic(host, notes)

    first = processors[0]
    brand = _linux_brand(blocks)
    flags = normalize_flags((first.get("flags") or first.get("features") or "").split())
    topo = _linux_topology(host, processors)
    logical = len(topo.cpus)
    physical = len(set(topo.core_of.values()))
    sockets = len(set(topo.package_of.values())) or 1

    perf_cpus, source = _linux_core_kinds(host, topo.cpus)
    if perf_cpus is None:
        perf = eff = None
    else:
        perf = len({topo.core_of[c] for c in perf_cpus if c in topo.core_of})
        eff = physical - perf
    return _report(host, notes, brand, sockets, physical, logical, flags, perf, eff, source)


def _linux_brand(blocks: Sequence[Mapping[str, str]]) -> str:
    for key in ("model name", "processor", "hardware", "cpu model"):
        for block in blocks:
            value = block.get(key, "")
            if value and not value.isdigit():
                return value
    for block in blocks:
        if "cpu implementer" in block:
            part = block.get("cpu part", "?")
            return f"ARM CPU (implementer {block['cpu implementer']}, part {part})"
    return "unknown CPU"


def _linux_topology(host: Host, processors: Sequence[Mapping[str, str]]) -> _Topology:
    listed = tuple(sorted(n for p in processors if (n := parse_int(p["processor"])) is not None))
    online = parse_cpulist(host.read_text("/sys/devices/system/cpu/online"))
    cpus = tuple(c for c in online if c in set(listed)) or listed
    by_number = {parse_int(p["processor"]): p for p in processors}
    package_of: dict[int, int] = {}
    core_of: dict[int, str] = {}
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        info = by_number.get(cpu, {})
        package = parse_int(host.read_text(base + "physical_package_id"))
        if package is None:
            package = parse_int(info.get("physical id")) or 0
        package_of[cpu] = package
        siblings = host.read_text(base + "core_cpus_list") or host.read_text(
            base + "thread_siblings_list"
        )
        if siblings and siblings.strip():
            core_of[cpu] = f"{package}:{siblings.strip()}"
        elif info.get("core id") is not None:
            core_of[cpu] = f"{package}:core{info['core id']}"
        else:
            core_of[cpu] = f"{package}:cpu{cpu}"
    return _Topology(cpus=cpus, package_of=package_of, core_of=core_of)


def _linux_core_kinds(host: Host, cpus: Sequence[int]) -> tuple[set[int] | None, str | None]:
    """The performance CPUs, and which sysfs source told (None: the OS does not say)."""
    core = parse_cpulist(host.read_text("/sys/devices/cpu_core/cpus"))
    atom = parse_cpulist(host.read_text("/sys/devices/cpu_atom/cpus"))
    if core and atom:
        return set(core) & set(cpus), "sysfs:cpu_core/cpu_atom"
    for name, source in (
        ("cpu_capacity", "sysfs:cpu_capacity"),
        ("cpufreq/cpuinfo_max_freq", "sysfs:cpufreq"),
    ):
        values = {
            c: parse_int(host.read_text(f"/sys/devices/system/cpu/cpu{c}/{name}")) for c in cpus
        }
        known = {c: v for c, v in values.items() if v}
        if cpus and len(known) == len(cpus):
            top = max(known.values())
            return {c for c, v in known.items() if v >= _EFFICIENCY_RATIO * top}, source
    return None, None


def _usable_cpus(host: Host, logical: int, notes: list[str]) -> int:
    usable = logical
    affinity = host.affinity()
    if affinity and affinity < usable:
        notes.append(f"this process may run on {affinity} of {logical} CPUs (affinity)")
        usable = affinity
    quota = _cgroup_cpu_quota(host)
    if quota is not None and quota < usable:
        notes.append(f"the container's CPU quota allows {quota} CPUs")
        usable = quota
    return max(usable, 1)


def _cgroup_cpu_quota(host: Host) -> int | None:
    v2 = host.read_text("/sys/fs/cgroup/cpu.max")
    if v2:
        quota, _, period = v2.strip().partition(" ")
        q, p = parse_int(quota), parse_int(period)
        return math.ceil(q / p) if q and p else None
    q = parse_int(host.read_text("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
    p = parse_int(host.read_text("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    if q and q > 0 and p:
        return math.ceil(q / p)
    return None


def _report(
    host: Host,
    notes: list[str],
    brand: str,
    sockets: int,
    physical: int,
    logical: int,
    flags: tuple[str, ...],
    perf: int | None = None,
    eff: int | None = None,
    source: str | None = None,
) -> tuple[CpuReport, list[str]]:
    """The report every platform's probe ends with: usable CPUs and the thread advice."""
    usable = _usable_cpus(host, logical, notes)
    report = CpuReport(
        brand=brand,
        architecture=normalize_arch(host.machine),
        sockets=sockets,
        physical_cores=physical,
        logical_cores=logical,
        usable_cpus=usable,
        performance_cores=perf,
        efficiency_cores=eff,
        core_kinds_source=source,
        flags=flags,
        recommended_threads=max(1, min(perf or physical, usable)),
    )
    return report, notes


def _probe_macos(host: Host, sysctl: Mapping[str, str]) -> tuple[CpuReport, list[str]]:
    notes: list[str] = []

    def number(key: str) -> int | None:
        return parse_int(sysctl.get(key))

    logical = number("hw.logicalcpu") or number("hw.ncpu") or 1
    physical = number("hw.physicalcpu") or logical
    perf = eff = None
    source = None
    if (number("hw.nperflevels") or 0) >= 2:
        perf, eff = number("hw.perflevel0.physicalcpu"), number("hw.perflevel1.physicalcpu")
        source = "sysctl:hw.perflevel"
    elif number("hw.nperflevels") == 1:
        perf, eff, source = physical, 0, "sysctl:hw.perflevel"
    raw_flags = [key.rsplit(".", 1)[-1] for key, value in sysctl.items()
                 if key.startswith("hw.optional.") and value.strip() == "1"]  # fmt: skip
    for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
        raw_flags += sysctl.get(key, "").split()
    brand = sysctl.get("machdep.cpu.brand_string") or "unknown CPU"
    sockets = number("hw.packages") or 1
    flags = normalize_flags(raw_flags)
    return _report(host, notes, brand, sockets, physical, logical, flags, perf, eff, source)


def _probe_generic(host: Host, notes: list[str]) -> tuple[CpuReport, list[str]]:
    logical, physical = host.cpu_counts()
    if not logical or logical < 1:
        notes.append("the OS reports no CPU count: assuming 1")
        logical = 1
    physical = physical if physical and 0 < physical <= logical else logical
    info = host.cpuinfo() or {}
    if not info:
        notes.append("py-cpuinfo could not identify the CPU: flags unknown")
    raw_flags = info.get("flags", [])
    flags = normalize_flags([str(f) for f in raw_flags] if isinstance(raw_flags, list) else [])
    brand = str(info.get("brand_raw") or "unknown CPU")
    return _report(host, notes, brand, 1, physical, logical, flags)
