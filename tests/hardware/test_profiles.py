"""`detect()` on the five recorded machines: the facts each one must yield."""

from __future__ import annotations

import json

import pytest

from localllm.hardware import HardwareReport
from tests.hardware.profiles import PROFILES, profile_report
from tests.hardware.recorded import GIB, MIB


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_is_consistent_and_round_trips(name: str) -> None:
    report = profile_report(name)
    cpu, mem = report.cpu, report.memory
    assert 1 <= cpu.physical_cores <= cpu.logical_cores
    assert 1 <= cpu.recommended_threads <= cpu.usable_cpus <= cpu.logical_cores
    assert 0 < mem.available <= mem.total
    for gpu in report.gpus:
        assert 0 <= gpu.memory_free <= gpu.memory_total
    assert [g.index for g in report.gpus if g.vendor == "nvidia"] == list(
        range(sum(g.vendor == "nvidia" for g in report.gpus))
    )
    text = json.dumps(report.to_dict())
    assert HardwareReport.from_dict(json.loads(text)) == report


def test_nvidia_laptop_hybrid_cores_and_cuda_gpu() -> None:
    report = profile_report("nvidia_laptop")
    cpu = report.cpu
    assert (cpu.physical_cores, cpu.logical_cores) == (14, 20)
    assert (cpu.performance_cores, cpu.efficiency_cores) == (6, 8)
    assert cpu.core_kinds_source == "sysfs:cpu_core/cpu_atom"
    assert cpu.recommended_threads == 6
    assert "avx_vnni" in cpu.flags and "avx512f" not in cpu.flags
    (gpu,) = report.gpus
    assert gpu.name == "NVIDIA GeForce RTX 4060 Laptop GPU"
    assert gpu.memory_total == 8188 * MIB
    assert gpu.memory_free == (8188 - 412) * MIB
    assert gpu.compute_capability == "8.9"
    assert (gpu.driver_version, gpu.cuda_version) == ("550.54.14", "12.4")
    assert gpu.usable_by_llama and gpu.backend == "cuda"
    assert report.llama.gpu_offload and "cuda" in report.llama.backends
    assert report.gpu_memory_total == 8188 * MIB


def test_workstation_two_gpus_and_uniform_zen_cores() -> None:
    report = profile_report("workstation_2x24")
    assert [g.index for g in report.gpus] == [0, 1]
    assert all(g.memory_total == 24564 * MIB for g in report.gpus)
    assert report.gpu_memory_total == 2 * 24564 * MIB
    # preferred cores boost 3 % higher: not efficiency cores
    assert (report.cpu.performance_cores, report.cpu.efficiency_cores) == (24, 0)
    assert report.cpu.recommended_threads == 24
    # identical GPUs: no advice about CUDA's device order
    assert not any("CUDA_DEVICE_ORDER" in n for n in report.notes)


def test_apple_m2_unified_memory_capped_at_two_thirds() -> None:
    report = profile_report("apple_m2")
    cpu = report.cpu
    assert cpu.brand == "Apple M2" and cpu.architecture == "arm64"
    assert (cpu.performance_cores, cpu.efficiency_cores, cpu.recommended_threads) == (4, 4, 4)
    assert set(cpu.flags) >= {"neon", "dotprod", "i8mm", "fp16"}
    (gpu,) = report.gpus
    assert gpu.vendor == "apple" and gpu.unified_memory and gpu.usable_by_llama
    assert gpu.memory_total == int(16 * GIB * 2 / 3)
    assert gpu.memory_free == 7 * GIB  # bounded by free RAM
    assert report.gpu_memory_total == 0  # unified memory is not extra memory
    assert report.memory.numa_nodes == ()


def test_xeon_server_numa_and_amx() -> None:
    report = profile_report("xeon_2s_amx")
    cpu = report.cpu
    assert (cpu.sockets, cpu.physical_cores, cpu.logical_cores) == (2, 112, 224)
    assert cpu.recommended_threads == 112
    assert {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"} <= set(cpu.flags)
    assert {"amx_tile", "amx_int8", "amx_bf16"} <= set(cpu.flags)
    nodes = report.memory.numa_nodes
    assert [n.id for n in nodes] == [0, 1]
    assert [len(n.cpus) for n in nodes] == [112, 112]
    assert [n.memory_total for n in nodes] == [256 * GIB, 256 * GIB]
    assert report.gpus == () and not report.llama.gpu_offload
    assert "amx_int8" in report.llama.cpu_features


def test_missing_nvml_is_a_reason_not_an_exception() -> None:
    report = profile_report("no_nvml")
    assert report.gpus == ()
    assert any("libnvidia-ml" in n and "not installed" in n for n in report.notes)
    assert any("card0 is an NVIDIA GPU" in n and "driver" in n for n in report.notes)
