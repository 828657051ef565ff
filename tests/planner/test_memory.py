"""The formula memory model against llama.cpp's own trial loads, and its layer rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from localllm.engine.trial import trial_load
from localllm.gguf.local import read_local
from localllm.planner.memory import GpuTarget, estimate, kv_cells
from localllm.planner.settings import LoadSettings
from tests.factory import TINY, TINY_MAMBA, TINY_SWA, write_model

SETTINGS = [
    LoadSettings(n_gpu_layers=0, n_ctx=2048),
    LoadSettings(n_gpu_layers=0, n_ctx=8192, flash_attn=False),
    LoadSettings(n_gpu_layers=0, n_ctx=4096, type_k="q8_0", type_v="q8_0", n_ubatch=256),
]


@pytest.mark.slow
@pytest.mark.parametrize("settings", SETTINGS, ids=["fa-2k", "nofa-8k", "q8kv-4k-ub256"])
def test_dense_8b_kv_and_compute_match_llama_cpp(
    llama8b_quants: dict[str, Path], settings: LoadSettings
) -> None:
    path = llama8b_quants["Q4_K_M"]
    measured = trial_load(path, settings)
    e = estimate(read_local(path), settings)
    assert e.host.kv == measured.kv_total
    assert abs(e.host.compute - measured.compute["CPU"]) / measured.compute["CPU"] < 0.01


def test_offload_order_output_first(llama8b_quants: dict[str, Path]) -> None:
    info = read_local(llama8b_quants["Q4_K_M"])
    gpu = (GpuTarget(0, "cuda"),)
    only_output = estimate(info, LoadSettings(n_gpu_layers=1, n_ctx=2048), gpu)
    assert only_output.gpus[0].layers == 0
    assert only_output.gpus[0].weights == info.output_bytes
    full = estimate(info, LoadSettings(n_gpu_layers=33, n_ctx=2048), gpu)
    assert full.gpus[0].layers == 32 and full.host.layers == 0
    # token_embd stays on the CPU, whatever the offload
    assert full.host.weights == info.input_bytes
    assert full.host.kv == 0 and full.gpus[0].kv > 0  # the KV cache follows its layers
    assert full.gpus[0].overhead > 0  # the CUDA context


def test_two_gpus_split_by_share(llama8b_quants: dict[str, Path]) -> None:
    info = read_local(llama8b_quants["Q8_0"])
    e = estimate(info, LoadSettings(n_gpu_layers=33, n_ctx=2048),
                 (GpuTarget(0, "cuda", 3.0), GpuTarget(1, "cuda", 1.0)))  # fmt: skip
    # 33 offloaded layers (the output one included), the first three quarters on GPU0
    assert [g.layers for g in e.gpus] == [25, 7]
    assert e.gpus[1].weights > e.gpus[1].layers * info.layers[0].weight_bytes  # + output


def test_tied_output_is_copied_to_the_gpu(tmp_path: Path) -> None:
    info = read_local(write_model(TINY_SWA, tmp_path / "swa.gguf"))
    assert info.tied_output
    e = estimate(info, LoadSettings(n_gpu_layers=1, n_ctx=512), (GpuTarget(0, "cuda"),))
    assert e.gpus[0].weights == info.output_bytes + info.input_bytes


def test_repack_moves_cpu_q4_weights_to_their_own_buffer(llama8b_quants: dict[str, Path]) -> None:
    info = read_local(llama8b_quants["Q4_K_M"])
    s = LoadSettings(n_gpu_layers=0, n_ctx=2048)
    packed, plain = estimate(info, s, repack=True), estimate(info, s, repack=False)
    assert packed.host.repack > 0 and plain.host.repack == 0
    assert packed.host.weights == plain.host.weights  # the originals stay mapped
    q8 = estimate(read_local(llama8b_quants["Q8_0"]), s, repack=True)
    assert q8.host.repack == 0  # Q8_0 is not repacked


def test_sliding_window_cells(tmp_path: Path) -> None:
    info = read_local(write_model(TINY_SWA, tmp_path / "swa.gguf"))  # a window of 128
    s = LoadSettings(n_gpu_layers=0, n_ctx=4096, n_ubatch=512)
    assert kv_cells(info, True, s) == 768  # pad(128 + 512, 256)
    assert kv_cells(info, False, s) == 4096
    s4 = LoadSettings(n_gpu_layers=0, n_ctx=4096, n_ubatch=512, n_seq_max=4)
    assert kv_cells(info, True, s4) == 3072  # per sequence


@pytest.mark.slow
@pytest.mark.parametrize("spec", [TINY, TINY_SWA, TINY_MAMBA], ids=["dense", "swa", "mamba"])
def test_kv_and_recurrent_state_match_llama_cpp(tmp_path: Path, spec: object) -> None:
    path = write_model(spec, tmp_path / "m.gguf")  # type: ignore[arg-type]
    s = LoadSettings(n_gpu_layers=0, n_ctx=4096, n_seq_max=2)
    measured = trial_load(path, s)
    e = estimate(read_local(path), s)
    # llama.cpp prints MiB with two decimals: compare to that resolution
    assert abs(e.host.kv - measured.kv_total) <= 6 << 10
    assert abs(e.host.recurrent - measured.recurrent_total) <= 6 << 10
