"""Broken or absurd inputs give a report with reasons, never an exception."""

from __future__ import annotations

from collections.abc import Sequence

from localllm.hardware import MemoryCounters, detect
from localllm.hardware.host import Host
from tests.hardware.profiles import apple_m2, no_nvml, nvidia_laptop
from tests.hardware.recorded import GIB, RecordedHost, Recording, drm_card, report_of


def test_unreadable_proc_cpuinfo_falls_back_to_counts_and_py_cpuinfo() -> None:
    rec = nvidia_laptop()
    del rec.files["/proc/cpuinfo"]
    rec.py_cpuinfo = {"brand_raw": "Some CPU", "flags": ["avx2", "fma", "pni"]}
    report = report_of(rec)
    assert report.cpu.brand == "Some CPU"
    assert report.cpu.flags == ("sse3", "avx2", "fma")
    assert (report.cpu.logical_cores, report.cpu.physical_cores) == (20, 14)
    assert any("/proc/cpuinfo" in n for n in report.notes)


def test_nothing_readable_at_all() -> None:
    rec = Recording(system="Linux", machine="", release="?")
    report = report_of(rec)
    assert report.cpu.logical_cores == 1 and report.cpu.recommended_threads == 1
    assert report.memory.total == 0
    assert report.gpus == ()
    assert any("CPU count" in n for n in report.notes)
    assert any("memory size" in n for n in report.notes)
    assert any("py-cpuinfo" in n for n in report.notes)


def test_garbage_in_sysfs_and_cpuinfo() -> None:
    rec = nvidia_laptop()
    rec.files["/proc/cpuinfo"] = "processor\t: zero\n\x00\x01garbage:::\n\nflags : avx2\n"
    rec.files["/sys/devices/system/cpu/online"] = "a-b,,-3"
    rec.files["/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"] = "fast\n"
    report = report_of(rec)
    assert report.cpu.logical_cores >= 1
    assert any("no processors" in n for n in report.notes)


def test_zero_free_memory_and_available_above_total() -> None:
    rec = nvidia_laptop()
    rec.memory = MemoryCounters(total=16 * GIB, available=0, swap_total=0, swap_free=5)
    report = report_of(rec)
    assert report.memory.available == 0
    assert report.memory.swap_free == 0
    assert any("0 B of RAM available" in n for n in report.notes)

    rec.memory = MemoryCounters(total=8 * GIB, available=9 * GIB, swap_total=0, swap_free=0)
    report = report_of(rec)
    assert report.memory.available == 8 * GIB
    assert any("clamped" in n for n in report.notes)


def test_zero_total_memory() -> None:
    rec = no_nvml()
    rec.memory = MemoryCounters(total=0, available=0, swap_total=0, swap_free=0)
    report = report_of(rec)
    assert report.memory.total == 0
    assert any("0 B of RAM" in n for n in report.notes)


def test_meminfo_used_when_psutil_fails() -> None:
    rec = no_nvml()
    rec.memory = None
    rec.files["/proc/meminfo"] = (
        "MemTotal:       32768000 kB\nMemFree:  100 kB\nMemAvailable:   16384000 kB\n"
        "SwapTotal:  0 kB\nSwapFree: 0 kB\n"
    )
    report = report_of(rec)
    assert report.memory.total == 32768000 * 1024
    assert report.memory.available == 16384000 * 1024


def test_container_memory_limit_caps_total_and_available() -> None:
    rec = no_nvml()
    rec.files["/sys/fs/cgroup/memory.max"] = f"{8 * GIB}\n"
    rec.files["/sys/fs/cgroup/memory.current"] = f"{3 * GIB}\n"
    rec.files["/sys/fs/cgroup/memory.stat"] = f"anon 1\ninactive_file {1 * GIB}\n"
    rec.files["/sys/fs/cgroup/cpu.max"] = "400000 100000\n"
    report = report_of(rec)
    assert report.memory.total == 8 * GIB and report.memory.cgroup_limit == 8 * GIB
    assert report.memory.available == 6 * GIB
    assert report.cpu.usable_cpus == 4 and report.cpu.recommended_threads == 4


def test_unlimited_cgroup_v1_is_ignored() -> None:
    rec = no_nvml()
    rec.files["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = "9223372036854771712\n"
    assert report_of(rec).memory.cgroup_limit is None


def test_affinity_limits_threads() -> None:
    rec = nvidia_laptop()
    rec.affinity = 2
    report = report_of(rec)
    assert report.cpu.usable_cpus == 2 and report.cpu.recommended_threads == 2
    assert any("affinity" in n for n in report.notes)


def test_cuda_gpu_with_cpu_only_build_says_how_to_fix() -> None:
    rec = nvidia_laptop()
    rec.llama = {**rec.llama, "gpu_offload": False, "backends": ["CPU"], "system_info": "CPU : "}
    report = report_of(rec)
    assert not report.gpus[0].usable_by_llama
    assert report.gpu_memory_total == 0
    assert any("no CUDA backend" in n and "GGML_CUDA=on" in n for n in report.notes)


def test_llama_not_installed_or_crashing() -> None:
    rec = nvidia_laptop()
    rec.llama = {"installed": False, "error": "the llama-cpp-python package is not installed"}
    report = report_of(rec)
    assert not report.llama.installed and not report.gpus[0].usable_by_llama
    assert any("llama-cpp-python package is not installed" in n for n in report.notes)

    rec.llama = {"installed": True, "error": "loading llama.cpp failed (exit code -4): SIGILL"}
    report = report_of(rec)
    assert report.llama.installed and not report.llama.gpu_offload
    assert any("exit code -4" in n for n in report.notes)


def test_build_using_features_the_cpu_lacks_is_flagged() -> None:
    rec = no_nvml()  # AVX2 CPU
    rec.llama = {**rec.llama, "system_info": "CPU : AVX2 = 1 | AVX512 = 1 | "}
    report = report_of(rec)
    assert any("avx512f, which this CPU lacks" in n for n in report.notes)


def test_amd_gpu_from_sysfs_and_intel_without_memory() -> None:
    rec = no_nvml()
    rec.files.update(
        drm_card(1, 0x1002, 0x744C, mem_info_vram_total=f"{24 * GIB}\n",
                 mem_info_vram_used=f"{1 * GIB}\n", product_name="Radeon RX 7900 XTX\n",
                 uevent="DRIVER=amdgpu\nPCI_SLOT_NAME=0000:03:00.0\n")
    )  # fmt: skip
    rec.files.update(drm_card(2, 0x8086, 0x4680))
    rec.files["/sys/class/drm/card1-DP-1/status"] = "connected\n"
    rec.llama = {**rec.llama, "gpu_offload": True, "backends": ["Vulkan", "CPU"]}
    report = report_of(rec)
    (amd,) = report.gpus
    assert amd.vendor == "amd" and amd.name == "Radeon RX 7900 XTX"
    assert amd.memory_free == 23 * GIB and amd.pci_bus_id == "0000:03:00.0"
    assert amd.usable_by_llama  # Vulkan drives every vendor
    assert any("Intel GPU 0x4680" in n and "not counted" in n for n in report.notes)


def test_apple_wired_limit_overrides_the_default_share() -> None:
    rec = apple_m2()
    rec.commands["sysctl iogpu.wired_limit_mb"] = "iogpu.wired_limit_mb: 14336\n"
    (gpu,) = report_of(rec).gpus
    assert gpu.memory_total == 14336 << 20


def test_apple_large_mac_gets_three_quarters() -> None:
    rec = apple_m2()
    rec.commands["sysctl hw machdep"] = rec.commands["sysctl hw machdep"].replace(
        "hw.memsize: 17179869184", f"hw.memsize: {64 * GIB}"
    )
    (gpu,) = report_of(rec).gpus
    assert gpu.memory_total == 48 * GIB


class _ExplodingHost(RecordedHost):
    """A host whose file reads raise: a probe bug must still yield a report."""

    def read_text(self, path: str) -> str | None:
        raise RuntimeError(f"boom reading {path}")

    def run(self, argv: Sequence[str]) -> str | None:
        raise RuntimeError("boom running")


def test_a_probe_that_raises_becomes_a_note() -> None:
    rec = nvidia_laptop()
    host: Host = _ExplodingHost(rec)
    report = detect(host, rec.nvml, rec.llama)
    assert report.cpu.brand == "unknown CPU"
    assert any(n.startswith("CPU probe failed (RuntimeError") for n in report.notes)
    assert report.gpus  # NVML was unaffected
