"""A draft model's memory beside its target's (localllm/planner/draft.py)."""

from __future__ import annotations

from pathlib import Path

from localllm.gguf.local import read_local
from localllm.planner.budget import budget_for
from localllm.planner.draft import combined, draft_estimate, draft_settings
from localllm.planner.plan import Candidate, Fit, plan
from tests.factory import LLAMA_1B, write_header_only
from tests.hardware.profiles import profile_report


def test_the_draft_goes_where_the_targets_output_layer_is(
    llama8b_quants: dict[str, Path], tmp_path: Path
) -> None:
    budget = budget_for(profile_report("workstation_2x24"), cpu_bandwidth_gbs=60.0)
    path = llama8b_quants["Q4_K_M"]
    target = plan([Candidate("Q4_K_M", read_local(path), path.stat().st_size)], budget).choice
    assert target is not None and target.fit is Fit.FULL_GPU
    draft = read_local(write_header_only(LLAMA_1B, tmp_path / "1b.gguf", "Q4_K_M"))
    settings = draft_settings(draft, target.settings, target.estimate.n_layer)
    assert settings.n_gpu_layers == draft.n_layer + 1
    assert (settings.n_ctx, settings.n_seq_max) == (
        target.settings.n_ctx,
        target.settings.n_seq_max,
    )
    memory = draft_estimate(draft, settings, budget)
    assert [g.device for g in memory.gpus] == ["GPU0"]  # one GPU: the first
    both = combined(target.estimate, memory)
    by_device = {g.device: g.total for g in both.gpus}
    target_gpu0 = next(g for g in target.estimate.gpus if g.device == "GPU0")
    runtime = min(target_gpu0.overhead, memory.gpus[0].overhead)  # one CUDA context
    assert by_device["GPU0"] == target_gpu0.total + memory.gpus[0].total - runtime
    assert both.host.weights == target.estimate.host.weights + memory.host.weights
    partial = draft_settings(draft, target.settings.__class__(n_gpu_layers=10, n_ctx=8192), 32)
    assert partial.n_gpu_layers == 0  # a target partly on the CPU: the draft on the CPU
