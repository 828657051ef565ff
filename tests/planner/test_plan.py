"""The planner's choices on the recorded machines, for an 8B- and a 70B-shaped model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from localllm.engine.trial import trial_load
from localllm.gguf.local import read_local
from localllm.hardware import MemoryCounters
from localllm.planner.budget import GIB, Budget, budget_for
from localllm.planner.explain import explain
from localllm.planner.memory import estimate
from localllm.planner.plan import Candidate, Fit, Plan, Policy, plan
from localllm.planner.settings import LoadSettings, MeasuredBuffers, flash_attention
from tests.factory import LLAMA_70B, write_header_only
from tests.hardware.profiles import PROFILES, profile_report
from tests.hardware.recorded import report_of

CPU_GBS = 60.0


def _candidates(files: dict[str, Path]) -> list[Candidate]:
    return [Candidate(q, read_local(p), p.stat().st_size) for q, p in files.items()]


@pytest.fixture(scope="module")
def llama8b(llama8b_quants: dict[str, Path]) -> list[Candidate]:
    return _candidates(llama8b_quants)


def _budget(profile: str) -> Budget:
    return budget_for(profile_report(profile), cpu_bandwidth_gbs=CPU_GBS)


def _assert_within_budget(p: Plan) -> None:
    assert p.choice is not None
    e, b = p.choice.estimate, p.budget
    gpus = {f"GPU{g.index}": g for g in b.gpus}
    for use in e.gpus:
        assert use.total <= gpus[use.device].usable
    unified = sum(u.total for u in e.gpus if gpus[u.device].unified)
    assert e.host.total + unified <= b.ram_usable <= b.ram_available - GIB


def test_8gb_laptop_gets_q4_k_m_fully_offloaded_at_default_context(
    llama8b: list[Candidate],
) -> None:
    p = plan(llama8b, _budget("nvidia_laptop"))
    assert p.n_ctx == 8192
    assert p.choice is not None and p.choice.label == "Q4_K_M"
    assert p.choice.fit is Fit.FULL_GPU and p.choice.settings.n_gpu_layers == 33
    assert p.choice.settings.n_threads == 6
    _assert_within_budget(p)


def test_8gb_laptop_fits_32k_with_a_q8_0_cache(llama8b: list[Candidate]) -> None:
    p = plan(llama8b, _budget("nvidia_laptop"), n_ctx=32768)
    assert p.choice is not None and p.choice.label == "Q4_K_M"
    assert p.choice.fit is Fit.FULL_GPU and p.choice.settings.type_k == "q8_0"
    _assert_within_budget(p)


def test_an_asked_kv_cache_type_is_kept_and_its_saving_said(llama8b: list[Candidate]) -> None:
    """`PARAMETER kv_cache_type q4_0`: the cache at about a quarter of f16 (18 of 64 bytes
    a block), at 64k a fit that f16 or q8_0 could not give entirely on the GPU."""
    asked = plan(llama8b, _budget("nvidia_laptop"), n_ctx=65536, kv_type="q4_0")
    assert asked.choice is not None and asked.choice.settings.type_k == "q4_0"
    assert asked.choice.settings.type_v == "q4_0" and asked.kv_type == "q4_0"
    auto = plan(llama8b, _budget("nvidia_laptop"), n_ctx=65536)
    assert auto.choice is not None
    assert asked.choice.settings.n_gpu_layers > auto.choice.settings.n_gpu_layers
    said = " ".join(explain(asked))
    assert "as asked (kv_cache_type): 5.8 GiB less than f16" in said, said
    _assert_within_budget(asked)
    cpu = plan(llama8b, _budget("nvidia_laptop"), n_ctx=4096, policy=Policy.CPU_ONLY,
               kv_type="q8_0")  # fmt: skip
    assert cpu.choice is not None and cpu.choice.settings.type_k == "q8_0"


def test_8gb_laptop_gets_q4_k_m_partially_offloaded_at_64k(llama8b: list[Candidate]) -> None:
    p = plan(llama8b, _budget("nvidia_laptop"), n_ctx=65536)
    assert p.choice is not None and p.choice.label in ("Q4_K_M", "IQ4_XS")  # the same class
    assert p.choice.fit is Fit.PARTIAL
    assert 0 < p.choice.settings.n_gpu_layers < 33
    _assert_within_budget(p)


def test_one_24gb_gpu_gets_q8_0_or_q6_k(llama8b: list[Candidate]) -> None:
    rec = PROFILES["workstation_2x24"]()
    rec.env["CUDA_VISIBLE_DEVICES"] = "0"
    report = report_of(rec)
    assert len(report.gpus) == 1
    p = plan(llama8b, budget_for(report, CPU_GBS))
    assert p.choice is not None and p.choice.label in ("Q8_0", "Q6_K")
    assert p.choice.fit is Fit.FULL_GPU


def test_never_f16_when_q8_0_fits(llama8b: list[Candidate]) -> None:
    p = plan(llama8b, _budget("workstation_2x24"))
    assert p.choice is not None and p.choice.label == "Q8_0"


def test_cpu_only_16gb_leaves_room_for_the_os(llama8b: list[Candidate]) -> None:
    rec = PROFILES["no_nvml"]()
    rec.memory = MemoryCounters(16 * GIB, 11 * GIB, 0, 0)
    p = plan(llama8b, budget_for(report_of(rec), CPU_GBS))
    assert p.choice is not None and p.choice.fit is Fit.CPU
    assert p.choice.label == "Q4_K_M"
    assert p.choice.estimate.host.total <= 11 * GIB - 1.6 * GIB  # a tenth of RAM kept free
    _assert_within_budget(p)


def test_apple_m2_unified_memory_counts_once(llama8b: list[Candidate]) -> None:
    p = plan(llama8b, _budget("apple_m2"))
    assert p.choice is not None and p.choice.fit is Fit.FULL_GPU
    _assert_within_budget(p)


def test_70b_fits_nowhere_on_the_laptop_and_says_what_it_needs(tmp_path: Path) -> None:
    files = {
        q: write_header_only(LLAMA_70B, tmp_path / f"70b-{q}.gguf", q) for q in ("Q4_K_M", "Q2_K")
    }
    p = plan(_candidates(files), _budget("nvidia_laptop"))
    assert p.choice is None
    assert all(o.fit is Fit.NONE and o.short_by > 0 for o in p.options)
    assert p.n_ctx == 512  # it tried smaller contexts first
    words = " ".join(explain(p))
    assert "Nothing fits" in words and "more memory" in words


def test_xeon_server_plans_for_the_cpu(llama8b: list[Candidate]) -> None:
    p = plan(llama8b, _budget("xeon_2s_amx"))
    assert p.choice is not None and p.choice.fit is Fit.CPU and p.choice.label == "Q4_K_M"
    assert p.choice.settings.n_threads == 112


def test_attention_on_the_cpu_goes_without_flash_attention_where_it_fits(
    llama8b: list[Candidate],
) -> None:
    """llama.cpp's flash attention decodes deep in a chat several times slower on a CPU
    (`settings.flash_attention`): a CPU plan goes without it, unless only its smaller
    buffers fit; on a GPU, or with a quantized V cache, it stays."""
    assert not flash_attention(0, "f16") and not flash_attention(1, "f16")  # (1: output layer)
    assert flash_attention(2, "f16") and flash_attention(0, "q8_0")
    cpu = plan(llama8b, _budget("xeon_2s_amx"))
    assert cpu.choice is not None and cpu.choice.fit is Fit.CPU
    assert not cpu.choice.settings.flash_attn
    assert "flash attention off" in " ".join(explain(cpu))
    quantized = plan(llama8b, _budget("xeon_2s_amx"), kv_type="q8_0")
    assert quantized.choice is not None and quantized.choice.settings.flash_attn
    gpu = plan(llama8b, _budget("nvidia_laptop"))
    assert gpu.choice is not None and gpu.choice.settings.flash_attn
    # RAM for the model with flash attention's buffers, not for the larger ones without
    model, settings = cpu.choice.candidate.model, cpu.choice.settings
    with_fa = estimate(model, replace(settings, flash_attn=True), (), cpu.budget.repack)
    assert with_fa.host.total < cpu.choice.estimate.host.total
    tight = replace(cpu.budget, ram_usable=with_fa.host.total + 1)
    p = plan([cpu.choice.candidate], tight, n_ctx=8192)
    assert p.choice is not None and p.choice.fit is Fit.CPU and p.choice.settings.flash_attn


def test_policies(llama8b: list[Candidate]) -> None:
    cpu = plan(llama8b, _budget("nvidia_laptop"), policy=Policy.CPU_ONLY)
    assert cpu.choice is not None and cpu.choice.fit is Fit.CPU
    assert cpu.choice.settings.n_gpu_layers == 0
    gpu = plan(llama8b, _budget("nvidia_laptop"), n_ctx=32768, policy=Policy.GPU_ONLY)
    assert all(o.fit in (Fit.FULL_GPU, Fit.NONE) for o in gpu.options)
    assert gpu.choice is None or gpu.choice.fit is Fit.FULL_GPU


def test_context_is_clamped_to_training(llama8b: list[Candidate]) -> None:
    short = [replace(c, model=replace(c.model, context_length=2048)) for c in llama8b]
    p = plan(short, _budget("workstation_2x24"), n_ctx=100_000)
    assert p.n_ctx == 2048
    assert plan(short, _budget("workstation_2x24")).n_ctx == 2048


def test_what_if_vram(llama8b: list[Candidate]) -> None:
    b = budget_for(profile_report("no_nvml"), CPU_GBS, vram=24 * GIB, gpu_name="RTX 4090")
    p = plan(llama8b, b)
    assert p.choice is not None and p.choice.label == "Q8_0"
    assert "RTX 4090" in explain(p)[0]


def test_measure_replans_when_llama_cpp_wants_more(llama8b: list[Candidate]) -> None:
    """A trial that reports three times the formula's KV cache changes the plan: Q4_K_M
    stays on the GPU only with a q8_0 cache."""
    calls: list[str] = []

    def measure(c: Candidate, s: LoadSettings) -> MeasuredBuffers:
        calls.append(c.label)
        kv = 3 * s.n_ctx * 32 * 8 * 256 * 2
        return MeasuredBuffers(kv, {}, 0, {"CPU": 279445504}, {}, {}, {}, None, s)

    before = plan(llama8b, _budget("nvidia_laptop"))
    assert before.choice is not None and before.choice.settings.type_k == "f16"
    p = plan(llama8b, _budget("nvidia_laptop"), measure=measure)
    assert calls and p.choice is not None and p.choice.measured
    assert p.choice.settings.type_k == "q8_0" or p.choice.fit is not Fit.FULL_GPU


@pytest.mark.slow
def test_real_trial_confirms_the_laptop_plan(llama8b_quants: dict[str, Path]) -> None:
    cands = _candidates(llama8b_quants)
    p = plan(cands, _budget("nvidia_laptop"),
             measure=lambda c, s: trial_load(llama8b_quants[c.label], s))  # fmt: skip
    assert p.choice is not None and p.choice.measured
    assert p.choice.label == "Q4_K_M" and p.choice.fit is Fit.FULL_GPU
