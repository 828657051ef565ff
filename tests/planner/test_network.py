"""RPC workers in a plan: each remote device costs every token a network round trip
and its bytes, the plan says so, and the workers are used only where they pay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from localllm.gguf.local import read_local
from localllm.planner.budget import GIB, Budget, budget_for, with_workers
from localllm.planner.explain import explain
from localllm.planner.network import ASSUMED_LINK_BYTES_PER_S, hops
from localllm.planner.placement import workers_pay
from localllm.planner.plan import Candidate, Fit, plan
from localllm.remote.workers import RemoteDevice
from tests.factory import LLAMA_70B, write_header_only
from tests.hardware.profiles import profile_report

CPU_GBS = 60.0


def _budget(profile: str = "nvidia_laptop") -> Budget:
    return budget_for(profile_report(profile), cpu_bandwidth_gbs=CPU_GBS)


def _workers(rtt_s: float, n: int = 2, size: int = 32 * GIB) -> list[RemoteDevice]:
    return [
        RemoteDevice(f"10.0.0.{i + 2}:50052", "RPC", "CPU", "CPU", size, size, rtt_s)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory: pytest.TempPathFactory) -> list[Candidate]:
    folder = tmp_path_factory.mktemp("70b")
    path = write_header_only(LLAMA_70B, folder / "70b-Q4_K_M.gguf", "Q4_K_M")
    return [Candidate("Q4_K_M", read_local(path), path.stat().st_size)]


def test_a_model_too_big_for_the_laptop_goes_across_the_workers(
    llama70b: list[Candidate],
) -> None:
    here = plan(llama70b, _budget())
    assert here.choice is None
    across = plan(llama70b, with_workers(_budget(), _workers(0.5e-3)))
    assert across.choice is not None and across.choice.fit is not Fit.NONE
    assert workers_pay(here.choice, across.choice) == "the model does not fit on this machine alone"
    trip = hops(LLAMA_70B.n_embd, across.choice.estimate, across.budget)
    assert [h.endpoint for h in trip] == ["10.0.0.2:50052", "10.0.0.3:50052"]
    assert all(h.layers > 0 and h.rtt_s == 0.5e-3 for h in trip)
    # The hidden state both ways, the commands, and the layers' share of the graph.
    assert all(h.bytes > 2 * LLAMA_70B.n_embd * 4 for h in trip)
    assert trip[0].seconds == pytest.approx(0.5e-3 + trip[0].bytes / ASSUMED_LINK_BYTES_PER_S)
    words = " ".join(explain(across))
    assert "The network adds 2 hops per token to 2 workers" in words
    assert "measured up to 0.50 ms" in words and "assumed 1 Gbit/s" in words


def test_a_slower_network_lowers_the_expected_speed(llama70b: list[Candidate]) -> None:
    near = plan(llama70b, with_workers(_budget(), _workers(0.1e-3)))
    far = plan(llama70b, with_workers(_budget(), _workers(20e-3)))
    assert near.choice is not None and far.choice is not None
    assert near.choice.settings == far.choice.settings  # the same placement...
    fast, slow = near.choice.tokens_per_s or 0.0, far.choice.tokens_per_s or 0.0
    assert 1 / slow - 1 / fast == pytest.approx(2 * (20e-3 - 0.1e-3), rel=1e-6)  # ...2 more RTTs


def test_a_model_that_fits_here_stays_here(llama8b_quants: dict[str, Path]) -> None:
    q4 = [Candidate("Q4_K_M", read_local(llama8b_quants["Q4_K_M"]), 0)]
    here = plan(q4, _budget())
    across = plan(q4, with_workers(_budget(), _workers(0.5e-3)))
    assert here.choice is not None and here.choice.fit is Fit.FULL_GPU
    assert across.choice is not None
    # The laptop's GPU runs it whole: the workers would only slow each token down.
    assert workers_pay(here.choice, across.choice) is None


def test_workers_pay_for_a_longer_context_or_a_better_quantization(
    llama8b_quants: dict[str, Path],
) -> None:
    q4 = [Candidate("Q4_K_M", read_local(llama8b_quants["Q4_K_M"]), 0)]
    small = replace(_budget("xeon_2s_amx"), gpus=(), ram_usable=int(8.7 * GIB))
    here = plan(q4, small)
    across = plan(q4, with_workers(small, _workers(0.5e-3)))
    assert here.choice is not None and across.choice is not None
    assert here.choice.settings.n_ctx < across.choice.settings.n_ctx == 8192
    assert "a longer context fits" in (workers_pay(here.choice, across.choice) or "")
    quants = [Candidate(q, read_local(llama8b_quants[q]), 0) for q in ("Q8_0", "Q4_K_M")]
    tighter = replace(small, ram_usable=int(8.35 * GIB))  # Q4_K_M fits, Q8_0 does not
    here = plan(quants, tighter, n_ctx=2048)
    across = plan(quants, with_workers(tighter, _workers(0.5e-3)), n_ctx=2048)
    assert here.choice is not None and here.choice.label == "Q4_K_M"
    assert across.choice is not None and across.choice.label == "Q8_0"
    assert workers_pay(here.choice, across.choice) == "Q8_0 fits with them (Q4_K_M alone)"


def test_a_model_that_fits_nowhere_says_what_each_host_has(llama70b: list[Candidate]) -> None:
    tight = with_workers(_budget(), _workers(0.5e-3, n=1, size=8 * GIB))
    p = plan(llama70b, tight)
    assert p.choice is None
    words = " ".join(explain(p))
    assert "this machine" in words and "10.0.0.2:50052" in words
    assert "more on any one of them" in words


def test_a_machine_too_small_for_its_own_share_says_how_much_it_lacks(
    llama70b: list[Candidate],
) -> None:
    """The workers hold plenty; this machine cannot hold what stays on it: the plan
    says which host lacks how much, not "0.0 GiB more on any one of them"."""
    tiny_here = replace(_budget(), ram_usable=GIB // 4)
    across = plan(llama70b, with_workers(tiny_here, _workers(0.5e-3, n=3, size=48 * GIB)))
    assert across.choice is None or across.choice.fit is Fit.NONE
    lines = explain(across)
    assert any(line.startswith("This machine lacks about ") for line in lines), lines
    assert not any("0.0 GiB more" in line for line in lines), lines
