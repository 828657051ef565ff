"""NVIDIA GPUs through NVML (the `pynvml` module of nvidia-ml-py).

The probe takes the NVML module as a parameter: the live one, or a fake that
answers from a recorded profile. Any NVML failure becomes a note: no driver,
a driver that is not loaded, a GPU that fell off the bus.

Device numbers follow `CUDA_VISIBLE_DEVICES` (indices or `GPU-` UUID
prefixes; the list ends at the first entry that names no GPU, as in CUDA), so
`index` is the number llama.cpp will use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localllm.hardware.report import GpuReport

# NVML return codes (nvml.h), so failures are told apart without importing pynvml.
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_ERROR_LIBRARY_NOT_FOUND = 12


@dataclass(frozen=True)
class _NvmlDevice:
    physical_index: int
    name: str
    uuid: str | None
    pci_bus_id: str | None
    total: int
    free: int
    used: int
    compute_capability: str | None


def probe_nvidia(nvml: Any, env: Mapping[str, str | None]) -> tuple[list[GpuReport], list[str]]:
    """GPUs NVML sees, numbered as CUDA will number them; `nvml=None`: not installed."""
    if nvml is None:
        return [], ["NVIDIA: the nvidia-ml-py package is not installed; NVIDIA GPUs not detected"]
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return [], [f"NVIDIA: {_init_failure(exc)}"]
    notes: list[str] = []
    try:
        driver = _text(_call(nvml.nvmlSystemGetDriverVersion))
        cuda = _cuda_version(_call(nvml.nvmlSystemGetCudaDriverVersion))
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            return [], [f"NVIDIA: NVML could not count GPUs: {exc}"]
        devices = []
        for i in range(count):
            device = _read_device(nvml, i, notes)
            if device is not None:
                devices.append(device)
    finally:
        with contextlib.suppress(Exception):  # nothing left that we could release
            nvml.nvmlShutdown()

    visible, visibility_notes = _visible(devices, env.get("CUDA_VISIBLE_DEVICES"))
    notes += visibility_notes
    if len({d.name for d in visible}) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        notes.append(
            "NVIDIA: these GPUs differ and CUDA numbers the fastest first; localllm's "
            "workers set CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA's numbers match this report "
            "(set it for other llama.cpp tools too)"
        )
    gpus = []
    for index, d in enumerate(visible):
        if d.free == 0:
            notes.append(f"NVIDIA: GPU {index} ({d.name}) reports 0 B free")
        gpus.append(
            GpuReport(
                index=index,
                vendor="nvidia",
                name=d.name,
                backend="cuda",
                memory_total=d.total,
                memory_free=d.free,
                memory_used=d.used,
                unified_memory=False,
                usable_by_llama=False,  # decided against the llama.cpp build by detect()
                physical_index=d.physical_index,
                uuid=d.uuid,
                pci_bus_id=d.pci_bus_id,
                compute_capability=d.compute_capability,
                driver_version=driver,
                cuda_version=cuda,
            )
        )
    return gpus, notes


def _init_failure(exc: Exception) -> str:
    code = getattr(exc, "value", None)
    if code == _NVML_ERROR_LIBRARY_NOT_FOUND:
        return "the NVIDIA driver library (libnvidia-ml) is not installed; no NVIDIA GPU detected"
    if code == _NVML_ERROR_DRIVER_NOT_LOADED:
        return "the NVIDIA driver is installed but not loaded (reboot, or check `nvidia-smi`)"
    if code == _NVML_ERROR_NO_PERMISSION:
        return "no permission to query the NVIDIA driver"
    return f"NVML failed to start: {exc}"


def _read_device(nvml: Any, i: int, notes: list[str]) -> _NvmlDevice | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        total, free, used = int(memory.total), int(memory.free), int(memory.used)
    except Exception as exc:
        notes.append(f"NVIDIA: GPU {i} could not be read and is left out: {exc}")
        return None
    if total <= 0:
        notes.append(f"NVIDIA: GPU {i} reports no memory and is left out")
        return None
    if free > total:
        notes.append(f"NVIDIA: GPU {i} reports more free memory than it has: clamped")
        free = total
    capability = _call(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    pci = _call(nvml.nvmlDeviceGetPciInfo, handle)
    return _NvmlDevice(
        physical_index=i,
        name=_text(_call(nvml.nvmlDeviceGetName, handle)) or f"NVIDIA GPU {i}",
        uuid=_text(_call(nvml.nvmlDeviceGetUUID, handle)),
        pci_bus_id=_text(getattr(pci, "busId", None)),
        total=total,
        free=max(free, 0),
        used=max(used, 0),
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
    )


def _visible(
    devices: Sequence[_NvmlDevice], spec: str | None
) -> tuple[list[_NvmlDevice], list[str]]:
    if spec is None:
        return list(devices), []
    spec = spec.strip()
    if spec == "" or spec == "-1":
        hidden = "NVIDIA: CUDA_VISIBLE_DEVICES hides every GPU"
        return [], [hidden] if devices else []
    visible: list[_NvmlDevice] = []
    for token in (t.strip() for t in spec.split(",")):
        match = _match(devices, token)
        if match is None:
            note = f"NVIDIA: CUDA_VISIBLE_DEVICES entry {token!r} names no GPU"
            return visible, [note + "; CUDA ignores it and every entry after it"]
        if match not in visible:
            visible.append(match)
    return visible, []


def _match(devices: Sequence[_NvmlDevice], token: str) -> _NvmlDevice | None:
    if token.isdigit():
        return next((d for d in devices if d.physical_index == int(token)), None)
    if token.startswith("GPU-") and len(token) > 4:
        found = [d for d in devices if d.uuid and d.uuid.startswith(token)]
        return found[0] if len(found) == 1 else None
    return None


def _call(function: Any, *args: Any) -> Any:
    """An optional NVML query: old drivers lack some, and any may fail."""
    try:
        return function(*args)
    except Exception:
        return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _cuda_version(value: object) -> str | None:
    """NVML encodes CUDA 12.4 as 12040."""
    if not isinstance(value, int) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"
