"""AMD and Intel GPUs from Linux's DRM sysfs (`/sys/class/drm/cardN/device`).

amdgpu reports its VRAM there; Intel's i915 usually does not, so an Intel GPU
is named in a note instead of being counted. NVIDIA cards are NVML's job; seen
here only to explain a missing NVIDIA driver.
"""

from __future__ import annotations

import re

from localllm.hardware.host import Host
from localllm.hardware.report import GpuReport
from localllm.hardware.textformats import parse_int

_CARD = re.compile(r"^card(\d+)$")
_VENDORS = {0x1002: "amd", 0x8086: "intel", 0x10DE: "nvidia"}


def probe_drm(host: Host, nvidia_found: bool) -> tuple[list[GpuReport], list[str]]:
    if host.system != "Linux":
        return [], []
    entries = host.list_dir("/sys/class/drm")
    if entries is None:
        return [], []
    gpus: list[GpuReport] = []
    notes: list[str] = []
    for entry in entries:
        match = _CARD.match(entry)
        if not match:
            continue
        base = f"/sys/class/drm/{entry}/device"
        vendor = _VENDORS.get(parse_int(host.read_text(f"{base}/vendor"), 16) or -1)
        device_id = (host.read_text(f"{base}/device") or "?").strip()
        if vendor is None:
            continue
        if vendor == "nvidia":
            if not nvidia_found:
                notes.append(
                    f"NVIDIA: {entry} is an NVIDIA GPU (device {device_id}) but NVML cannot "
                    "see it: install or load the NVIDIA driver to use it"
                )
            continue
        total = parse_int(host.read_text(f"{base}/mem_info_vram_total"))
        used = parse_int(host.read_text(f"{base}/mem_info_vram_used"))
        label = (host.read_text(f"{base}/product_name") or "").strip()
        name = label or f"{vendor.upper() if vendor == 'amd' else 'Intel'} GPU {device_id}"
        if not total:
            notes.append(f"{name} ({entry}): the kernel does not report its memory; not counted")
            continue
        used = min(max(used or 0, 0), total)
        gpus.append(
            GpuReport(
                index=len(gpus),
                vendor=vendor,
                name=name,
                backend="rocm" if vendor == "amd" else "sycl",
                memory_total=total,
                memory_free=total - used,
                memory_used=used,
                unified_memory=False,
                usable_by_llama=False,  # decided against the llama.cpp build by detect()
                pci_bus_id=_bus_id(host, entry),
            )
        )
    return gpus, notes


def _bus_id(host: Host, entry: str) -> str | None:
    for line in (host.read_text(f"/sys/class/drm/{entry}/device/uevent") or "").splitlines():
        key, _, value = line.partition("=")
        if key == "PCI_SLOT_NAME":
            return value.strip()
    return None
