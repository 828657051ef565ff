"""Put the probes together into one `HardwareReport`.

`detect()` takes every input as a parameter (the host, NVML, the llama.cpp
build's answer) so tests run it on recorded machines; `detect_live()` wires
in this machine. A probe that fails, even through a bug, becomes a note: the
report is always produced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from localllm.hardware.apple import probe_apple
from localllm.hardware.cpu import normalize_arch, probe_cpu
from localllm.hardware.drm import probe_drm
from localllm.hardware.host import Host, LiveHost
from localllm.hardware.llama_build import (
    build_llama_report,
    can_drive,
    cpu_feature_notes,
    gpu_notes,
    query_llama_build,
)
from localllm.hardware.memory import probe_memory
from localllm.hardware.nvidia import probe_nvidia
from localllm.hardware.report import (
    CpuReport,
    GpuReport,
    HardwareReport,
    LlamaBuildReport,
    MemoryReport,
)
from localllm.hardware.textformats import parse_sysctl

T = TypeVar("T")


def read_sysctl(host: Host) -> dict[str, str]:
    """The macOS sysctl values the probes use (empty elsewhere)."""
    if host.system != "Darwin":
        return {}
    values = parse_sysctl(host.run(["sysctl", "hw", "machdep"]))
    # Absent on older macOS and on Intel Macs, so asked for separately.
    values.update(parse_sysctl(host.run(["sysctl", "iogpu.wired_limit_mb"])))
    return values


def load_nvml() -> Any:
    """The live NVML module, or None when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def detect(host: Host, nvml: Any, llama_answer: Mapping[str, Any]) -> HardwareReport:
    """Build the report from explicit inputs; see `detect_live` for this machine."""
    notes: list[str] = []

    def guarded(name: str, probe: Callable[[], tuple[T, list[str]]], fallback: T) -> T:
        try:
            value, probe_notes = probe()
        except Exception as exc:  # a probe bug must not cost the user the whole report
            notes.append(f"{name} probe failed ({type(exc).__name__}: {exc}); values are guesses")
            return fallback
        notes.extend(probe_notes)
        return value

    no_gpus: list[GpuReport] = []
    sysctl: dict[str, str] = guarded("sysctl", lambda: (read_sysctl(host), []), {})
    cpu = guarded("CPU", lambda: probe_cpu(host, sysctl), _unknown_cpu(host))
    memory = guarded("memory", lambda: probe_memory(host), MemoryReport(0, 0, 0, 0, None, ()))
    env = {name: host.getenv(name) for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}
    nvidia = guarded("NVIDIA", lambda: probe_nvidia(nvml, env), no_gpus)
    apple = guarded(
        "Apple GPU",
        lambda: probe_apple(host.system, host.machine, sysctl, memory.available),
        no_gpus,
    )
    others = guarded("DRM", lambda: probe_drm(host, bool(nvidia)), no_gpus)
    llama = guarded(
        "llama.cpp",
        lambda: build_llama_report(llama_answer),
        LlamaBuildReport(False, None, None, (), (), False),
    )

    gpus = [replace(g, usable_by_llama=can_drive(llama, g)) for g in nvidia + apple + others]
    notes += gpu_notes(llama, gpus)
    notes += cpu_feature_notes(llama, cpu)
    return HardwareReport(
        os=host.system,
        os_release=host.release,
        cpu=cpu,
        memory=memory,
        gpus=tuple(gpus),
        llama=llama,
        notes=tuple(notes),
    )


def detect_live() -> HardwareReport:
    """Probe this machine (about half a second: llama.cpp is asked in a child process)."""
    return detect(LiveHost(), load_nvml(), query_llama_build())


def _unknown_cpu(host: Host) -> CpuReport:
    return CpuReport(
        brand="unknown CPU",
        architecture=normalize_arch(host.machine),
        sockets=1,
        physical_cores=1,
        logical_cores=1,
        usable_cpus=1,
        performance_cores=None,
        efficiency_cores=None,
        core_kinds_source=None,
        flags=(),
        recommended_threads=1,
    )
