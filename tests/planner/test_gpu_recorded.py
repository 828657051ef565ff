"""The planner against what a real NVIDIA H200 measured (`benchmarks/gpu/vram.py`).

`benchmarks/results/gpu-h200-vram.json` holds real loads of 1B, 8B and
Mixtral-shaped Q4_K_M files: llama.cpp's buffers and NVML's growth of the
loading process, fully offloaded at 4k to 32k and partly offloaded with the
GPU filled so only 6, 8, 12 or 24 GiB were free. These tests recompute the
planner's numbers for the same files and settings, so a change to the
formulas that would plan an out-of-memory load (or waste layers) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localllm.gguf.info import ModelInfo
from localllm.gguf.local import read_local
from localllm.hardware import HardwareReport
from localllm.planner.budget import GIB, budget_for
from localllm.planner.memory import GPU_RUNTIME_OVERHEAD, GpuTarget, estimate
from localllm.planner.plan import Candidate, plan
from localllm.planner.settings import LoadSettings
from tests.factory import LLAMA_1B, LLAMA_8B, MIXTRAL_8X7B, write_header_only

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
RECORDED = json.loads((RESULTS / "gpu-h200-vram.json").read_text())
MIB = 1 << 20
SPECS = {"1B": LLAMA_1B, "8B": LLAMA_8B, "MoE": MIXTRAL_8X7B}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ModelInfo, Path]]:
    folder = tmp_path_factory.mktemp("gpu-shapes")
    out = {}
    for name, spec in SPECS.items():  # the same header-true files the GPU loaded
        path = write_header_only(spec, folder / f"{spec.name}-Q4_K_M.gguf", "Q4_K_M")
        out[name] = (read_local(path), path)
    return out


def _predicted_mib(info: ModelInfo, settings: dict[str, Any]) -> float:
    s = LoadSettings(**{**settings, "devices": tuple(settings["devices"])})
    [gpu] = estimate(info, s, [GpuTarget(0, "cuda")], repack=True).gpus
    return gpu.total / MIB


def _loads() -> list[tuple[str, dict[str, Any]]]:
    rows = [(r["model"], r["measured"]) for r in RECORDED["full_offload"]]
    rows += [(r["model"], load) for r in RECORDED["budgets"] for load in r["loads"]]
    return [(model, load) for model, load in rows if load.get("loaded")]


@pytest.mark.parametrize(("model", "load"), _loads())
def test_predicted_vram_covers_what_nvml_measured(
    models: dict[str, tuple[ModelInfo, Path]], model: str, load: dict[str, Any]
) -> None:
    info, _ = models[model]
    predicted = _predicted_mib(info, load["settings"])
    measured = load["nvml_delta_mib"]
    # Never short by more than rounding; over by at most the MoE's partial-offload bound.
    slack = 256 if info.expert_count and load["settings"]["n_gpu_layers"] <= info.n_layer else 32
    assert measured - 16 <= predicted <= measured + slack, (predicted, measured)


def test_the_cuda_context_is_what_nvml_adds_beyond_the_buffers() -> None:
    loads = _loads()
    assert len(loads) > 40
    for _, load in loads:
        b = load["buffers"]
        on_gpu = sum(part.get("CUDA0", 0) for part in (b["model"], b["kv_buffers"], b["compute"]))
        outside = load["nvml_delta_mib"] - on_gpu / MIB
        assert abs(outside - GPU_RUNTIME_OVERHEAD["cuda"] / MIB) <= 8, outside


@pytest.mark.parametrize(
    "row", RECORDED["budgets"], ids=lambda r: f"{r['model']}@{r['budget_gib']}G"
)
def test_planned_layers_load_and_are_at_most_one_short(
    models: dict[str, tuple[ModelInfo, Path]], row: dict[str, Any]
) -> None:
    report = HardwareReport.from_dict(json.loads((RESULTS / "hw-h200-cuda.json").read_text()))
    info, path = models[row["model"]]
    budget = budget_for(report, cpu_bandwidth_gbs=50.0, vram=row["budget_gib"] * GIB)
    choice = plan([Candidate("Q4_K_M", info, path.stat().st_size)], budget, n_ctx=row["n_ctx"])
    assert choice.choice is not None
    settings = choice.choice.settings
    assert settings.type_k == row["kv_type"], "the recording is stale: rerun benchmarks/gpu"
    assert row["planned_loads"]
    assert row["most_layers"] - 1 <= settings.n_gpu_layers <= row["most_layers"]
