"""A report recorded on a real NVIDIA H200 machine (see benchmarks/results/).

It pins two things: reports written by schema 1 stay readable, and NVML's
numbers as the probe reads them agree with `nvidia-smi` on the same machine.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from localllm.hardware import HardwareReport

DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
MIB = 1 << 20


def test_recorded_h200_report_reads_back() -> None:
    report = HardwareReport.from_dict(json.loads((DATA / "nvidia-h200.json").read_text()))
    (gpu,) = report.gpus
    assert gpu.name == "NVIDIA H200" and gpu.compute_capability == "9.0"
    assert gpu.cuda_version == "13.0"
    # llama-cpp-python was not installed there, and the report says so.
    assert not gpu.usable_by_llama
    assert any("llama-cpp-python" in note for note in report.notes)


def test_nvml_agrees_with_nvidia_smi() -> None:
    report = HardwareReport.from_dict(json.loads((DATA / "nvidia-h200.json").read_text()))
    with (RESULTS / "nvidia-smi-h200.csv").open() as f:
        row = next(csv.DictReader(f, skipinitialspace=True))
    (gpu,) = report.gpus
    # nvidia-smi prints whole MiB, rounded
    assert round(gpu.memory_total / MIB) == int(row["memory.total [MiB]"].split()[0])
    assert round(gpu.memory_free / MIB) == int(row["memory.free [MiB]"].split()[0])
    assert gpu.driver_version == row["driver_version"]


def test_recorded_h200_with_a_cuda_build_offers_offload() -> None:
    """`localllm hw --json` on the H200 with llama-cpp-python built for CUDA (benchmarks/gpu)."""
    data = json.loads((RESULTS / "hw-h200-cuda.json").read_text())
    report = HardwareReport.from_dict(data)
    (gpu,) = report.gpus
    assert gpu.usable_by_llama and gpu.backend == "cuda"
    with (RESULTS / "nvidia-smi-h200-cuda.csv").open() as f:
        row = next(csv.DictReader(f, skipinitialspace=True))
    assert round(gpu.memory_total / MIB) == int(row["memory.total [MiB]"].split()[0])
    assert round(gpu.memory_free / MIB) == int(row["memory.free [MiB]"].split()[0])
    assert "cuda" in data["llama"]["backends"] and data["llama"]["gpu_offload"]
