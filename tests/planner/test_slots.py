"""Parallel slots: added only where they cost the single user nothing."""

from __future__ import annotations

from pathlib import Path

from localllm.gguf.local import read_local
from localllm.planner.budget import Budget, budget_for
from localllm.planner.memory import kv_bytes
from localllm.planner.plan import Candidate, Fit, plan
from localllm.planner.slots import with_slots
from tests.hardware.profiles import profile_report


def _budget(profile: str) -> Budget:
    return budget_for(profile_report(profile), cpu_bandwidth_gbs=60.0)


def _q4(llama8b_quants: dict[str, Path]) -> Candidate:
    path = llama8b_quants["Q4_K_M"]
    return Candidate("Q4_K_M", read_local(path), path.stat().st_size)


def test_a_model_wholly_on_gpus_gets_the_slots_half_their_memory_holds(
    llama8b_quants: dict[str, Path],
) -> None:
    budget = _budget("workstation_2x24")
    one = plan([_q4(llama8b_quants)], budget).choice
    assert one is not None and one.fit is Fit.FULL_GPU
    many = with_slots(one, budget)
    s = many.settings
    # 1 GiB of cache per slot at 8192 tokens: 16 slots are 8 GiB on each 24 GiB GPU, 32
    # would be more than half of either.
    assert (s.n_seq_max, s.n_ctx, s.n_ctx_seq) == (16, 16 * one.settings.n_ctx, one.settings.n_ctx)
    assert s.n_gpu_layers == one.settings.n_gpu_layers
    extra_kv = 15 * sum(kv_bytes(one.candidate.model, one.settings))
    assert many.estimate.total - one.estimate.total >= extra_kv
    usable = {f"GPU{g.index}": g.usable for g in budget.gpus}
    assert all(u.kv <= usable[u.device] / 2 for u in many.estimate.gpus)


def test_slots_never_cost_gpu_layers_or_context(llama8b_quants: dict[str, Path]) -> None:
    budget = _budget("nvidia_laptop")  # 8 GiB: the 8B model at 8192 just fits
    one = plan([_q4(llama8b_quants)], budget).choice
    assert one is not None
    kept = with_slots(one, budget)
    assert kept.settings.n_gpu_layers == one.settings.n_gpu_layers
    assert kept.settings.n_ctx_seq == one.settings.n_ctx
    gpus = {f"GPU{g.index}": g for g in budget.gpus}
    assert all(u.total <= gpus[u.device].usable for u in kept.estimate.gpus)


def test_asked_for_slots_shrink_to_what_fits(llama8b_quants: dict[str, Path]) -> None:
    budget = _budget("nvidia_laptop")
    one = plan([_q4(llama8b_quants)], budget).choice
    assert one is not None
    assert with_slots(one, _budget("workstation_2x24"), wanted=3).settings.n_seq_max == 3
    asked = with_slots(one, budget, wanted=64)
    assert 1 <= asked.settings.n_seq_max < 64
