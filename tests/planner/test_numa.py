"""NUMA modes from the nodes `hw` reads (`planner.numa`), on the recorded dual-socket
Xeon, and the worker's check of where a model's pages landed (`engine.numa`)."""

from __future__ import annotations

from pathlib import Path

from localllm.engine.numa import lopsided, spread
from localllm.gguf.local import read_local
from localllm.hardware.report import NumaNode
from localllm.planner.budget import GIB, budget_for
from localllm.planner.explain import explain
from localllm.planner.numa import numa_plan
from localllm.planner.plan import Candidate, Fit, plan
from localllm.planner.settings import LoadSettings
from tests.hardware.profiles import profile_report

XEON = profile_report("xeon_2s_amx")


def test_one_node_has_nothing_to_choose() -> None:
    one = (NumaNode(0, tuple(range(16)), 64 * GIB, 40 * GIB),)
    assert numa_plan(one, 8, all_on_gpu=False).mode == ""
    assert numa_plan((), 8, all_on_gpu=True).mode == ""


def test_layers_on_the_cpu_spread_over_the_nodes() -> None:
    p = numa_plan(XEON.memory.numa_nodes, 112, all_on_gpu=False)
    assert (p.mode, p.threads, p.cpus) == ("distribute", 112, ())
    assert "2 nodes" in p.reason and "page cache" in p.reason


def test_a_model_wholly_on_the_gpu_stays_on_one_node() -> None:
    nodes = XEON.memory.numa_nodes
    p = numa_plan(nodes, 112, all_on_gpu=True)
    roomiest = max(nodes, key=lambda n: n.memory_free or 0)  # node 1: 242 of 256 GiB free
    assert (p.mode, p.threads, p.cpus) == ("isolate", 56, roomiest.cpus)
    assert f"node {roomiest.id} (56 threads)" in p.reason


def test_plan_on_the_recorded_dual_socket_xeon_says_so(llama8b_quants: dict[str, Path]) -> None:
    path = llama8b_quants["Q4_K_M"]
    candidates = [Candidate("Q4_K_M", read_local(path), path.stat().st_size)]
    cpu = plan(candidates, budget_for(XEON, cpu_bandwidth_gbs=60.0))
    assert cpu.choice is not None and cpu.choice.fit is Fit.CPU
    assert (cpu.choice.settings.numa, cpu.choice.settings.n_threads) == ("distribute", 112)
    assert any(line.startswith("NUMA: 2 nodes") for line in explain(cpu))
    gpu = plan(candidates, budget_for(XEON, cpu_bandwidth_gbs=60.0, vram=80 * GIB))
    assert gpu.choice is not None and gpu.choice.fit is Fit.FULL_GPU
    assert (gpu.choice.settings.numa, gpu.choice.settings.n_threads) == ("isolate", 56)
    assert any("stays on node 1 (56 threads)" in line for line in explain(gpu))


MAPS = """\
7f0000000000 default file=/models/m.gguf mapped=900 active=0 N0=850 N1=50 kernelpagesize_kB=4
7f1000000000 default file=/models/m.gguf mapped=100 N0=100 kernelpagesize_kB=4
7f2000000000 default file=/usr/lib/libc.so.6 mapped=40 N1=40 kernelpagesize_kB=4
7f3000000000 default heap anon=10 N0=10 kernelpagesize_kB=4
"""


def test_a_distributed_load_whose_pages_sit_on_one_node_says_so() -> None:
    pages = spread(["/models/m.gguf"], MAPS)
    assert pages == {0: 950, 1: 50}
    note = lopsided(LoadSettings(n_gpu_layers=0, n_ctx=512, numa="distribute"), pages)
    assert note is not None and "95% of the model's pages are on NUMA node 0" in note
    assert "drop_caches" in note
    even = {0: 500, 1: 500}
    assert lopsided(LoadSettings(n_gpu_layers=0, n_ctx=512, numa="distribute"), even) is None
    assert lopsided(LoadSettings(n_gpu_layers=0, n_ctx=512), pages) is None  # no mode: no claim
