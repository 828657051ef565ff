"""Recorded machines: what each one's kernel files, sysctl, psutil and NVML answer.

A `Recording` holds exactly the inputs the probes read through `Host`, NVML
and the llama.cpp child process, so `detect()` runs on it unchanged. The
builders below write the files in the kernel's own formats, which keeps a
224-CPU server readable as a few lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

from localllm.hardware import HardwareReport, MemoryCounters, detect

GIB = 1 << 30
MIB = 1 << 20


@dataclass
class Recording:
    system: str
    machine: str
    release: str
    files: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    memory: MemoryCounters | None = None
    cpu_counts: tuple[int | None, int | None] = (None, None)
    affinity: int | None = None
    py_cpuinfo: Mapping[str, Any] | None = None
    nvml: FakeNvml | None = None
    llama: Mapping[str, Any] = field(default_factory=lambda: {"installed": False})


class RecordedHost:
    """A `Host` that answers from a `Recording`; unknown paths read as missing."""

    def __init__(self, recording: Recording) -> None:
        self.rec = recording

    @property
    def system(self) -> str:
        return self.rec.system

    @property
    def machine(self) -> str:
        return self.rec.machine

    @property
    def release(self) -> str:
        return self.rec.release

    def read_text(self, path: str) -> str | None:
        return self.rec.files.get(path)

    def list_dir(self, path: str) -> list[str] | None:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self.rec.files if p.startswith(prefix)}
        return sorted(names) if names else None

    def run(self, argv: Sequence[str]) -> str | None:
        return self.rec.commands.get(" ".join(argv))

    def getenv(self, name: str) -> str | None:
        return self.rec.env.get(name)

    def memory(self) -> MemoryCounters | None:
        return self.rec.memory

    def cpu_counts(self) -> tuple[int | None, int | None]:
        return self.rec.cpu_counts

    def affinity(self) -> int | None:
        return self.rec.affinity

    def cpuinfo(self) -> Mapping[str, Any] | None:
        return self.rec.py_cpuinfo


@dataclass
class FakeGpu:
    name: str
    total: int
    used: int
    capability: tuple[int, int]
    uuid: str
    bus_id: str


class FakeNvml:
    """The subset of pynvml the probe calls, raising pynvml's real error types."""

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        driver: str = "550.54.14",
        cuda: int = 12040,
        init_error: int | None = None,
        failing: Mapping[str, int] | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self.driver, self.cuda = driver, cuda
        self.init_error = init_error
        self.failing = dict(failing or {})  # method name -> NVML error code
        self.initialised = False

    def _check(self, method: str) -> None:
        if method in self.failing:
            raise pynvml.NVMLError(self.failing[method])

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check("nvmlSystemGetCudaDriverVersion")
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        assert self.initialised, "NVML used before nvmlInit"
        self._check("nvmlDeviceGetHandleByIndex")
        return self.gpus[i]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str:
        self._check("nvmlDeviceGetName")
        return gpu.name

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        self._check("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=gpu.total, used=gpu.used, free=gpu.total - gpu.used)

    def nvmlDeviceGetCudaComputeCapability(self, gpu: FakeGpu) -> tuple[int, int]:
        self._check("nvmlDeviceGetCudaComputeCapability")
        return gpu.capability

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        return gpu.uuid

    def nvmlDeviceGetPciInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(busId=gpu.bus_id)


def report_of(rec: Recording) -> HardwareReport:
    return detect(RecordedHost(rec), rec.nvml, rec.llama)


# --- builders writing kernel formats -------------------------------------------------


def cpulist(cpus: Iterable[int]) -> str:
    """(0, 1, 2, 5) -> '0-2,5' as the kernel prints it."""
    ordered, parts = sorted(cpus), []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts) + "\n"


@dataclass(frozen=True)
class Core:
    package: int
    core_id: int
    cpus: tuple[int, ...]
    max_khz: int


def linux_cpu_files(model: str, flags: str, cores: Sequence[Core]) -> dict[str, str]:
    """/proc/cpuinfo plus sysfs topology and cpufreq for the given cores."""
    files: dict[str, str] = {}
    blocks = []
    all_cpus = sorted(c for core in cores for c in core.cpus)
    per_package = {p: sum(1 for c in cores if c.package == p) for p in {c.package for c in cores}}
    for core in cores:
        for cpu in core.cpus:
            blocks.append(
                f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n"
                f"physical id\t: {core.package}\ncore id\t\t: {core.core_id}\n"
                f"cpu cores\t: {per_package[core.package]}\nflags\t\t: {flags}\n"
            )
            base = f"/sys/devices/system/cpu/cpu{cpu}"
            files[f"{base}/topology/physical_package_id"] = f"{core.package}\n"
            files[f"{base}/topology/core_id"] = f"{core.core_id}\n"
            files[f"{base}/topology/core_cpus_list"] = cpulist(core.cpus)
            files[f"{base}/cpufreq/cpuinfo_max_freq"] = f"{core.max_khz}\n"
    blocks.sort(key=lambda b: int(b.split(":", 1)[1].split("\n", 1)[0]))
    files["/proc/cpuinfo"] = "\n".join(blocks)
    files["/sys/devices/system/cpu/online"] = cpulist(all_cpus)
    return files


def smt_cores(
    package: int, first_core: int, count: int, first_cpu: int, sibling_offset: int, khz: int
) -> list[Core]:
    """`count` two-thread cores numbered the Linux way (siblings `sibling_offset` apart)."""
    return [
        Core(package, first_core + i, (first_cpu + i, first_cpu + i + sibling_offset), khz)
        for i in range(count)
    ]


def numa_files(nodes: Mapping[int, tuple[Sequence[int], int, int]]) -> dict[str, str]:
    """node id -> (cpus, total bytes, free bytes)."""
    files = {}
    for node, (cpus, total, free) in nodes.items():
        base = f"/sys/devices/system/node/node{node}"
        files[f"{base}/cpulist"] = cpulist(cpus)
        files[f"{base}/meminfo"] = (
            f"Node {node} MemTotal:       {total // 1024} kB\n"
            f"Node {node} MemFree:        {free // 1024} kB\n"
            f"Node {node} MemUsed:        {(total - free) // 1024} kB\n"
        )
    files["/sys/devices/system/node/online"] = cpulist(nodes)
    files["/sys/devices/system/node/possible"] = cpulist(nodes)
    return files


def drm_card(card: int, vendor: int, device: int, **extra: str) -> dict[str, str]:
    base = f"/sys/class/drm/card{card}/device"
    files = {f"{base}/vendor": f"0x{vendor:04x}\n", f"{base}/device": f"0x{device:04x}\n"}
    files[f"/sys/class/drm/card{card}/dev"] = f"226:{card}\n"
    files.update({f"{base}/{name}": value for name, value in extra.items()})
    return files


def llama_answer(system_info: str, backends: Sequence[str], devices: Sequence[dict[str, Any]],
                 gpu_offload: bool) -> dict[str, Any]:  # fmt: skip
    """What `_llama_child` prints for a build with these backends."""
    return {
        "installed": True,
        "version": "0.3.36",
        "system_info": system_info,
        "gpu_offload": gpu_offload,
        "backends": list(backends),
        "devices": list(devices),
    }
