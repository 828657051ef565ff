"""The NVML probe: device numbering, CUDA_VISIBLE_DEVICES and every failure mode."""

from __future__ import annotations

import pynvml
import pytest

from localllm.hardware.nvidia import probe_nvidia
from tests.hardware.recorded import GIB, MIB, FakeGpu, FakeNvml


def _gpus(*names: str) -> list[FakeGpu]:
    return [
        FakeGpu(name, 24 * GIB, 1 * GIB, (8, 6), f"GPU-{i}aaa{i}-0000", f"0000:{i:02x}:00.0")
        for i, name in enumerate(names)
    ]


def test_nvml_none_means_package_missing() -> None:
    gpus, notes = probe_nvidia(None, {})
    assert gpus == [] and "nvidia-ml-py" in notes[0]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "not installed"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "not loaded"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "permission"),
        (pynvml.NVML_ERROR_UNKNOWN, "NVML failed to start"),
    ],
)
def test_init_failures_become_reasons(code: int, words: str) -> None:
    gpus, notes = probe_nvidia(FakeNvml(init_error=code), {})
    assert gpus == []
    assert len(notes) == 1 and words in notes[0]


def test_cuda_visible_devices_by_index_renumbers_from_zero() -> None:
    nvml = FakeNvml(_gpus("A", "B", "C"))
    gpus, _ = probe_nvidia(nvml, {"CUDA_VISIBLE_DEVICES": "2,0"})
    assert [(g.index, g.physical_index, g.name) for g in gpus] == [(0, 2, "C"), (1, 0, "A")]
    assert not nvml.initialised, "NVML must be shut down"


def test_cuda_visible_devices_by_uuid_prefix() -> None:
    gpus, _ = probe_nvidia(FakeNvml(_gpus("A", "B")), {"CUDA_VISIBLE_DEVICES": "GPU-1aaa"})
    assert [g.name for g in gpus] == ["B"]


def test_cuda_visible_devices_stops_at_first_invalid_entry() -> None:
    gpus, notes = probe_nvidia(FakeNvml(_gpus("A", "B")), {"CUDA_VISIBLE_DEVICES": "0,7,1"})
    assert [g.name for g in gpus] == ["A"]
    assert "'7'" in notes[0]


@pytest.mark.parametrize("spec", ["", "-1"])
def test_cuda_visible_devices_empty_hides_all(spec: str) -> None:
    gpus, notes = probe_nvidia(FakeNvml(_gpus("A")), {"CUDA_VISIBLE_DEVICES": spec})
    assert gpus == [] and "hides every GPU" in notes[0]


def test_mixed_gpus_advise_pci_bus_order() -> None:
    _, notes = probe_nvidia(FakeNvml(_gpus("RTX 4090", "RTX 3060")), {})
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in n for n in notes)
    _, notes = probe_nvidia(
        FakeNvml(_gpus("RTX 4090", "RTX 3060")), {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    )
    assert notes == []


def test_device_that_fails_memory_query_is_left_out_with_reason() -> None:
    nvml = FakeNvml(_gpus("A"), failing={"nvmlDeviceGetMemoryInfo": pynvml.NVML_ERROR_GPU_IS_LOST})
    gpus, notes = probe_nvidia(nvml, {})
    assert gpus == [] and "left out" in notes[0]


def test_optional_queries_failing_keep_the_device() -> None:
    nvml = FakeNvml(
        _gpus("A"),
        failing={
            "nvmlDeviceGetName": pynvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetCudaComputeCapability": pynvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlSystemGetCudaDriverVersion": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        },
    )
    (gpu,), _ = probe_nvidia(nvml, {})
    assert gpu.name == "NVIDIA GPU 0"
    assert gpu.compute_capability is None and gpu.cuda_version is None
    assert gpu.memory_total == 24 * GIB


def test_count_failure_is_a_reason() -> None:
    nvml = FakeNvml(_gpus("A"), failing={"nvmlDeviceGetCount": pynvml.NVML_ERROR_UNKNOWN})
    gpus, notes = probe_nvidia(nvml, {})
    assert gpus == [] and "count" in notes[0]


def test_absurd_memory_values() -> None:
    zero_free = FakeGpu("Full", 8 * GIB, 8 * GIB, (8, 9), "GPU-z", "0000:01:00.0")
    no_memory = FakeGpu("Broken", 0, 0, (8, 9), "GPU-b", "0000:02:00.0")
    over = FakeGpu("Over", 8 * GIB, -512 * MIB, (8, 9), "GPU-o", "0000:03:00.0")
    gpus, notes = probe_nvidia(FakeNvml([zero_free, no_memory, over]), {})
    assert [g.name for g in gpus] == ["Full", "Over"]
    assert gpus[0].memory_free == 0
    assert gpus[1].memory_free == gpus[1].memory_total
    assert any("reports 0 B free" in n for n in notes)
    assert any("no memory" in n for n in notes)
    assert any("clamped" in n for n in notes)
